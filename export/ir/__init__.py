"""snnav's NIR IR, torch-free: errors, extension nodes, NIR files (read/write), validation,
summaries and the graph's schedule (the extension nodes are specified in ``export/EXTENSIONS.md``). ``hardware_sims``
imports only this part of ``export``."""
