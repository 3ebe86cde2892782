from facer_cli.entry import main

main()
