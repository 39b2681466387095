"""Every Lava process snnav defines, one module each, all importing Lava:

* `memmap_io`: the backend's inputs and records through memory-mapped files (``MemmapSource``, ``MemmapSink``, and
  ``RecordRows``, with which a process writes its own records);
* `neuron`: ``RecordedLIFReset``, Lava's ``LIFReset`` and its models, writing the neuron's records themselves;
* `delay`: the ``Delay`` process (alignment delays and NIR Delay nodes);
* one process per extension node (``export/EXTENSIONS.md``): `spike_attention`, `attention_scores`,
  `attention_apply`, `complementary_fusion`, `gate`, and the two RUNNING (causal) nodes in `causal`, on the shared
  run loop of `base`; `builders` holds the
  ``type name -> builder`` table (``EXTENSION_BUILDERS``) the backend uses.

The extension processes' semantics (no Lava) are in ``hardware_sims.extensions``, their fixed-point formats in
``hardware_sims.extensions.ports``. Lava looks for process models by re-executing every module of this folder:
only process modules belong here, with absolute imports. This ``__init__`` imports nothing.
"""
