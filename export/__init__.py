"""From the library's torch models to NIR, and NIR itself.

* ir: snnav's NIR IR, torch-free (errors, extension nodes, files, validation, graph schedule) -- the only part
  hardware_sims imports;
* from_torch: torch model -> NIR graph, and the check that the graph reproduces the model;
* interpreter: the reference NIR interpreter in torch;
* interop: snnTorch's and Norse's own importers run on snnav's graphs.
"""
