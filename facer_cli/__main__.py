from facer_cli.cli import main

main()
