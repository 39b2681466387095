"""Loihi fixed point: formats, reference arithmetic and the quantizers (no Lava).

* `formats`: Loihi's integer formats (bit widths, decays, weight mantissa grids, sign modes);
* `reference`: the reference integer arithmetic of Lava's bit-accurate Dense, Sparse and LIF models;
* `quantize`: one layer at a time -- weights, LIF parameters, state exponents, the quantization report;
* `plan_quantizer`: a whole float `Plan` -> its fixed-point `Plan` (``quantize_plan``);
* `prepare`: what a fixed-point run needs (``prepare_fixed``: quantized plan, constructor arguments, integer
  inputs), shared by the Lava backend and the emulator.
"""
