"""Torch model -> NIR graph, snnav's NIR extension nodes, a reference NIR interpreter, snnTorch/Norse interop."""
