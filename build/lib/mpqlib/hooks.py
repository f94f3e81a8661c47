"""Recording what named layers receive, with hooks that never outlive their use.

:func:`capture_inputs` is the one place mpqlib registers forward pre-hooks to read layer
inputs (supernet calibration, HAWQ's traces, the feature extractor): the hooks are removed on
leaving the ``with`` block, also when the forward pass raises.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

__all__ = ["CapturedInputs", "capture_inputs"]


class CapturedInputs(dict):
    """``{layer name: its first positional input in the latest call}``, plus ``calls``: how many
    times each layer ran while captured (a layer reused in one pass shows up as calls > 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def clear(self) -> None:
        super().clear()
        self.calls.clear()


@contextmanager
def capture_inputs(model: nn.Module, names: Iterable[str], *, detach: bool = False) -> Iterator[CapturedInputs]:
    """Within the block, record the input of each module of ``model`` named in ``names``.

    ``detach=True`` stores detached tensors (features to keep); otherwise the tensors stay in
    the autograd graph (Hessian traces differentiate through them). Unknown names raise a
    ``ValueError`` naming them before any hook is registered.
    """
    names = list(names)
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"{type(model).__name__} has no modules {unknown}")
    captured = CapturedInputs()

    def recorder(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            x = args[0]
            captured[name] = x.detach() if detach and isinstance(x, torch.Tensor) else x
            captured.calls[name] = captured.calls.get(name, 0) + 1
        return hook

    handles = []
    try:
        for n in names:
            handles.append(modules[n].register_forward_pre_hook(recorder(n)))
        yield captured
    finally:
        for h in handles:
            h.remove()
