"""One module per ``snnav`` subcommand; each exposes ``add_arguments(parser)`` and ``run(args) -> int``."""
