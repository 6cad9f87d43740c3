"""One module per `gate` subcommand: `HELP`, `configure(parser)` and `run(args) -> exit code`."""
