"""mpqlib: mixed-precision quantization policy search on proxy data (SEAM) and baselines.

The verbs a user needs::

    from mpqlib import quantize, Policy, cost_model
    from mpqlib.search import search          # seam, ce, target, limpq, hawq, uniform, random
    from mpqlib.allocate import allocate      # the ILP bit allocator
"""

from ._version import __version__
from .cost import cost_model
from .policy import Policy
from .quant import quantize

__all__ = ["Policy", "cost_model", "quantize", "__version__"]
