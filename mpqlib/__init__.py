"""mpqlib: mixed-precision quantization policy search on proxy data (SEAM) and baselines.

The verbs a user needs::

    from mpqlib import quantize, Policy, cost_model
    from mpqlib.search import search          # seam, ce, target, limpq, hawq, uniform, random
    from mpqlib.allocate import allocate      # the ILP bit allocator
"""

__version__ = "0.1.0"

from .cost import cost_model  # noqa: E402
from .policy import Policy  # noqa: E402
from .quant import quantize  # noqa: E402

__all__ = ["Policy", "cost_model", "quantize", "__version__"]
