"""`python -m facer_cli`: the console script (`facer_cli.entry`)."""

from facer_cli.entry import main

main()
