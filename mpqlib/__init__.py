"""mpqlib: mixed-precision quantization policy search on proxy data (SEAM) and baselines.

The verbs a user needs are importable from here::

    from mpqlib import quantize, Policy, cost_model, allocate, search
"""

__version__ = "0.1.0"

from .allocate import InfeasibleBudget, allocate  # noqa: E402
from .cost import cost_model  # noqa: E402
from .policy import Policy  # noqa: E402
from .quant import quantize  # noqa: E402
from .search import search  # noqa: E402

__all__ = ["InfeasibleBudget", "Policy", "allocate", "cost_model", "quantize", "search", "__version__"]
