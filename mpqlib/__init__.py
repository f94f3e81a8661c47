"""mpqlib: mixed-precision quantization policy search on proxy data (SEAM) and baselines.

The verbs a user needs are importable from here::

    from mpqlib import quantize, Policy, allocate, bitops
"""

__version__ = "0.1.0"
