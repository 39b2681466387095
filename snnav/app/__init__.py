"""snnav's application layer: the ``snnav`` command, the main job, the simulate driver, the report.

This is the only code that imports across the three packages (the library ``snnav.{neurons,models,data,training}``,
``export`` and ``hardware_sims``); the layers below it never import it (checked by import-linter, see pyproject.toml).
"""
