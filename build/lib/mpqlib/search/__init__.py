"""Policy searches: SEAM and its baselines, all returning a :class:`SearchResult`.

One entry point, :func:`search`, configured by one typed config per method
(:mod:`mpqlib.config`) and dispatched through :data:`mpqlib.config.RUNNERS`::

    from mpqlib.search import search
    from mpqlib.config import SeamConfig
    result = search(model, proxy, budget, SeamConfig(epochs=4))

=============  ===========================  ================================================
method         config                       what it does
=============  ===========================  ================================================
seam           :class:`SeamConfig`          differentiable search on (proxy) data, L-GM head
ce             :class:`CEConfig`            the same search with a linear head + cross-entropy
target         :class:`TargetConfig`        the same search on the target, model's classifier
joint          :class:`JointConfig`         weights and bit-widths trained together on the target
evaluation     :class:`EvaluationConfig`    sampled policies, each fine-tuned and scored
orthogonality  :class:`OrthogonalityConfig` training-free: layer orthogonality, then the ILP
limpq          :class:`LimpqConfig`         importance indicators (one step size per bit), ILP
hawq           :class:`HawqConfig`          Hessian trace x quantization perturbation, ILP
uniform        :class:`UniformConfig`       the highest uniform precision within the budget
random         :class:`RandomConfig`        a random policy that meets the budget
=============  ===========================  ================================================

``data`` is an :class:`mpqlib.data.Images`, any map-style dataset of ``(image, label)`` or a
``DataLoader``; it is streamed in batches (:func:`mpqlib.data.as_loader`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .. import data as D
from ..allocate import InfeasibleBudget
from ..config import METHODS, SearchConfig, SeamConfig, method_config, runner_for  # noqa: F401  (METHODS: the API)
from ..cost import BUDGET_FORMS, INPUT_SIZE, CostModel, cost_model
from ..errors import BudgetError, ConfigError
from ..measure import Meter  # noqa: F401  (the package's API)
from ..policy import Policy  # noqa: F401  (the package's API)
from .result import SearchResult, make_record, readout  # noqa: F401  (the package's API)


def _resolve_device(model: torch.nn.Module, device) -> torch.device:
    """``device``, or the device the model's parameters live on when None."""
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _check_budget(budget) -> int | None:
    """A BitOps budget as a positive int (None: no budget); anything else is a BudgetError."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise BudgetError(f"search() takes a budget in BitOps (an int, or None for no budget), not {budget!r}; "
                          f"turn 'w3a3' into BitOps with mpqlib.cost.budget(cost_model(model), 'w3a3')")
    if not np.isfinite(budget) or budget <= 0:
        raise BudgetError(f"budget {budget!r} BitOps must be a positive finite number; {BUDGET_FORMS}")
    return int(budget)


def _check_feasible(cost: CostModel, budget: int | None, candidates) -> None:
    """Fail before any work when even the lowest candidate bits everywhere exceed ``budget``."""
    lo = min(candidates)
    floor = cost.uniform_bitops(lo)
    if budget is not None and budget < floor:
        raise InfeasibleBudget(f"no policy fits {budget:,} BitOps: W{lo}A{lo} on every searchable layer (the "
                               f"cheapest the candidates allow) needs {floor:,}; raise the budget (e.g. 'w{lo}a{lo}')",
                               min_bitops=floor, min_size_bits=0)


def _config(config, options: dict) -> SearchConfig:
    if isinstance(config, str):
        return method_config(config, **options)
    if options:
        raise ConfigError(f"options {sorted(options)} go into the config: pass {type(config).__name__}(...)"
                          f".replace({', '.join(f'{k}=...' for k in sorted(options))}) instead")
    if not isinstance(config, SearchConfig):
        raise ConfigError(f"search() takes a search config (SeamConfig(), LimpqConfig(), ... or a method name "
                          f"with options), not {type(config).__name__}")
    return config


def search(model: torch.nn.Module, data, budget: int | None, config: SearchConfig | str | None = None, *,
           device: str | torch.device | None = None, progress: bool = True, input_size: tuple[int, ...] | None = None,
           val_data=None, sampler=None, **options) -> SearchResult:
    """Search a bit-width policy for ``model`` under a BitOps ``budget`` (None: no budget).

    ``config`` picks the method and holds its options (``SeamConfig(epochs=4)``); a method
    name plus keyword ``options`` (``search(m, d, b, "seam", epochs=4)``) builds the config
    with :func:`mpqlib.config.method_config`. ``data`` is the search data (None for
    ``uniform``/``random``), ``val_data`` held-out data some methods report on. ``device``:
    where to run (None: the model's device). ``input_size`` (1, C, H, W) is taken from the
    data's images when None and must agree with them otherwise. ``sampler`` (a
    ``DistributedSampler``, say) orders the search's batches (:func:`mpqlib.data.as_loader`).

    The record holds ``config`` (the config's :meth:`~mpqlib.config.Config.to_dict`) and
    ``config_type`` (its class name), so a record says exactly what ran.
    """
    if isinstance(model, str):  # the former search(method, model, data, budget, **options)
        return _legacy_search(model, data, budget, config, device=device, progress=progress, input_size=input_size,
                              val_data=val_data, sampler=sampler, **options)
    cfg = _config(config if config is not None else SeamConfig(), options)
    budget = _check_budget(budget)
    runner = runner_for(cfg)
    device = _resolve_device(model, device)
    model = model.to(device)
    if data is not None:
        input_size = D.check_fits(data, input_size)
    input_size = INPUT_SIZE if input_size is None else (1, *input_size) if len(input_size) == 3 else tuple(input_size)
    D.check_model_takes(model, input_size, data)
    _check_feasible(cost_model(model, input_size), budget, cfg.candidates)
    result = runner(model, data, budget, cfg, device=device, progress=progress, input_size=input_size,
                    val_data=val_data, sampler=sampler)
    result.record.update(config=cfg.to_dict(), config_type=type(cfg).__name__)
    return result


def _legacy_search(method: str, model, data, budget, **kw) -> SearchResult:
    """Deprecated: ``search(method, model, data, budget, **options)``; use a config object."""
    warnings.warn("search(method, model, data, budget, **options) is deprecated; use "
                  "search(model, data, budget, SeamConfig(...)) or search(model, data, budget, method, **options)",
                  DeprecationWarning, stacklevel=3)
    return search(model, data, budget, method, **kw)


from . import baselines, differentiable, evaluation, joint, orthogonality  # noqa: E402,F401  (runners register themselves)
