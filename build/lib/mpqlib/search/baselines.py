"""Baselines in the same harness: LIMPQ-style indicators, HAWQ-style Hessian traces,
uniform precision and random policies. Each returns a :class:`~mpqlib.search.SearchResult`."""

from __future__ import annotations

import itertools
import random as _random
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import data as D
from ..allocate import InfeasibleBudget
from ..config import HawqConfig, LimpqConfig, RandomConfig, UniformConfig, register_runner
from ..cost import INPUT_SIZE, cost_model
from ..hooks import capture_inputs
from ..policy import Policy
from ..train import fit, seed_everything
from .result import Meter, SearchResult, make_record, readout
from .supernet import search_optimiser, step_parameters, supernet


def _choices(candidates: Sequence[int]) -> list[tuple[int, int]]:
    return list(itertools.product(candidates, candidates))


def limpq_cost(s_w, s_a, alpha: float) -> np.ndarray:
    """LIMPQ's ILP cost alpha * s_w(l, w) + s_a(l, a) for every layer and (w, a) in product order."""
    s_w, s_a = np.asarray(s_w), np.asarray(s_a)
    return (alpha * s_w[:, :, None] + s_a[:, None, :]).reshape(len(s_w), -1)


@register_runner(LimpqConfig)
def limpq(model: nn.Module, data, budget: int | None, cfg: LimpqConfig, *, device="cpu", progress: bool = True,
          input_size=None, sampler=None, **_) -> SearchResult:
    """LIMPQ (Tang et al., ECCV 2022), reconstructed: one LSQ step size per candidate bit-width
    and layer; a one-time training pass in which every batch runs each uniform bit-width and one
    random mix; the learned step sizes are the importance indicators, and the ILP minimises
    sum_l alpha * s_w(l, b_w) + s_a(l, b_a) under the budget. The backbone stays frozen.

    Weight steps are much smaller than activation steps (weights are small numbers), so with
    ``alpha=1`` the ILP would spend the whole budget on activations; ``alpha=None`` sets it to
    mean(s_a) / mean(s_w), giving both kinds equal weight on average (LIMPQ tunes alpha by hand).
    The alpha used is in the record and the extras (``alpha``)."""
    seed_everything(cfg.seed)
    candidates = tuple(cfg.candidates)
    cost = cost_model(model, input_size or D.check_fits(data, None))
    rng = _random.Random(cfg.seed)
    with Meter() as meter:
        calib, _ = D.take(data, cfg.batch_size, cfg.seed)
        net, mixed = supernet(model, candidates, cost=cost, calibration=calib.to(device))
        net = net.to(device)
        steps = step_parameters(net)
        opt = search_optimiser(net, (steps, cfg.lr_step))
        configs = [[(b, b)] * len(mixed) for b in candidates]

        def step(net_, x, y):
            loss_sum, logits = 0.0, None
            for conf in configs + [[(rng.choice(candidates), rng.choice(candidates)) for _ in mixed]]:
                for m, (w, a) in zip(mixed.values(), conf):
                    m.fix(w, a)
                logits = net_(x)
                loss_sum = loss_sum + F.cross_entropy(logits, y)
            return loss_sum / (len(configs) + 1), logits

        loader = D.as_loader(data, cfg.batch_size, seed=cfg.seed, sampler=sampler)
        hist = fit(net, loader, opt, epochs=cfg.epochs, step=step, seed=cfg.seed, device=device, train_mode=False,
                   desc=f"limpq on {D.describe(data)}", progress=progress)
        s_w = np.array([[q.step.item() for q in m.w_quants] for m in mixed.values()])
        s_a = np.array([[q.step.item() for q in m.a_quants] for m in mixed.values()])
        alpha = float(s_a.mean() / s_w.mean()) if cfg.alpha is None else cfg.alpha
        layer_cost = limpq_cost(s_w, s_a, alpha)
        policy = readout(cost, layer_cost, _choices(candidates), budget, method="limpq", search_data=D.describe(data),
                         seed=cfg.seed)
    passes = len(configs) + 1
    record = make_record("limpq", data, meter, epochs=cfg.epochs, images=hist.images * passes, seed=cfg.seed,
                         budget=budget, cost=cost, policy=policy, config=cfg)
    record.update(alpha=alpha, passes_per_batch=passes)
    extras = {"layers": list(mixed), "candidates": list(candidates), "step_w": s_w.tolist(), "step_a": s_a.tolist(),
              "alpha": alpha}
    return SearchResult(policy, record, extras)


def _layer_inputs(model: nn.Module, layers: Sequence[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input of each of ``layers`` in one forward pass of ``x`` (hooks removed afterwards)."""
    with capture_inputs(model, layers) as inputs:
        model(x)
    return dict(inputs)


def rademacher(shape, generator: torch.Generator) -> torch.Tensor:
    """A +-1 probe vector drawn with ``generator`` on the generator's device."""
    return torch.randint(0, 2, shape, generator=generator, device=generator.device).float() * 2 - 1


def hutchinson_traces(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: Sequence[str], *,
                      iters: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per layer, Hutchinson estimates of tr(H) of the loss w.r.t. the layer's weight and
    w.r.t. its input (summed over the batch), each over ``iters`` Rademacher probes.

    The probes are drawn on ``x``'s device with a generator on that device seeded by ``seed``:
    the same seed gives the same probes on one device (CPU and CUDA generators differ)."""
    model.eval()
    x = x.clone().requires_grad_(True)  # so every layer input is part of the graph
    with torch.enable_grad():
        with capture_inputs(model, layers) as inputs:
            loss = F.cross_entropy(model(x), y)
        targets = [model.get_submodule(n).weight for n in layers] + [inputs[n] for n in layers]
        grads = torch.autograd.grad(loss, targets, create_graph=True)
        g = torch.Generator(device=x.device).manual_seed(seed)
        est = np.zeros(len(targets))
        for _ in range(iters):
            vs = [rademacher(t.shape, g) for t in targets]
            hv = torch.autograd.grad(grads, targets, grad_outputs=vs, retain_graph=True)
            est += np.array([(h * v).sum().item() for h, v in zip(hv, vs)])
    est /= iters
    return est[: len(layers)], est[len(layers):]


@register_runner(HawqConfig)
def hawq(model: nn.Module, data, budget: int | None, cfg: HawqConfig, *, device="cpu", progress: bool = True,
         input_size=None, **_) -> SearchResult:
    """HAWQ-V3 style: sensitivity(l, w, a) = tr(H_W)/n_W * ||Q_w(W) - W||^2
    + tr(H_x)/n_x * ||Q_a(x) - x||^2 (per sample), traces by Hutchinson on ``cfg.images`` images
    of ``data``, quantizers LSQ-initialised (MSE-best step); then the ILP under the budget."""
    from ..quant import LSQ

    seed_everything(cfg.seed)
    candidates = tuple(cfg.candidates)
    cost = cost_model(model, input_size or D.check_fits(data, None))
    names = cost.names
    model.eval()
    with Meter() as meter:
        x, y = (t.to(device) for t in D.take(data, cfg.images, cfg.seed))
        tr_w, tr_x = np.zeros(len(names)), np.zeros(len(names))
        chunk = cfg.batch_size
        starts = list(range(0, len(x), chunk))
        for start in starts:
            tw, tx = hutchinson_traces(model, x[start:start + chunk], y[start:start + chunk], names, iters=cfg.iters,
                                       seed=cfg.seed + start)
            tr_w += tw / len(starts)
            tr_x += tx / len(starts)
        with torch.no_grad():
            inputs = _layer_inputs(model, names, x[:chunk])
        layer_cost = np.zeros((len(names), len(candidates) ** 2))
        for i, n in enumerate(names):
            w = model.get_submodule(n).weight.detach()
            a = inputs[n]
            dw, da = [], []
            for b in candidates:
                qw, qa = LSQ(b, signed=True, per_weight=True).to(w.device), LSQ(b).to(a.device)
                with torch.no_grad():
                    dw.append(((qw(w) - w) ** 2).sum().item())
                    da.append(((qa(a) - a) ** 2).sum().item() / len(a))
            # loss = batch mean, so tr_x is the mean per-sample trace: divide by one sample's size
            sw = tr_w[i] / w.numel() * np.array(dw)
            sx = tr_x[i] / a[0].numel() * np.array(da)
            layer_cost[i] = (sw[:, None] + sx[None, :]).reshape(-1)
        policy = readout(cost, layer_cost, _choices(candidates), budget, method="hawq", search_data=D.describe(data),
                         seed=cfg.seed)
    record = make_record("hawq", data, meter, epochs=0, images=len(x) * (1 + 2 * cfg.iters), seed=cfg.seed,
                         budget=budget, cost=cost, policy=policy, config=cfg)
    extras = {"layers": names, "trace_w": tr_w.tolist(), "trace_x": tr_x.tolist(), "candidates": list(candidates)}
    return SearchResult(policy, record, extras)


@register_runner(UniformConfig)
def uniform(model: nn.Module, data, budget: int | None, cfg: UniformConfig, *, input_size=None, **_) -> SearchResult:
    """W``weight_bits``A``act_bits`` if the config names them, else the highest uniform precision
    (w = a) whose BitOps fit the budget (``data`` unused)."""
    cost = cost_model(model, input_size or INPUT_SIZE)
    with Meter() as meter:
        if cfg.weight_bits is not None:
            w, a = cfg.weight_bits, cfg.act_bits
            policy = Policy.uniform(model, w, a, method="uniform", search_data="none", seed=cfg.seed)
            if budget is not None and cost.bitops(policy) > budget:
                raise InfeasibleBudget(f"uniform W{w}A{a} needs {cost.bitops(policy):,} BitOps, over the budget of "
                                       f"{budget:,}", min_bitops=cost.bitops(policy), min_size_bits=0)
        else:
            fits = [b for b in sorted(cfg.candidates) if budget is None or cost.uniform_bitops(b) <= budget]
            if not fits:
                lo = min(cfg.candidates)
                raise InfeasibleBudget(f"no uniform precision fits {budget:,} BitOps; uniform W{lo}A{lo} needs "
                                       f"{cost.uniform_bitops(lo):,}", min_bitops=cost.uniform_bitops(lo), min_size_bits=0)
            w = a = fits[-1]
            policy = Policy.uniform(model, w, a, method="uniform", search_data="none", seed=cfg.seed)
        policy.provenance.update(budget_bitops=budget, bitops=cost.bitops(policy), size_bytes=cost.size_bytes(policy))
    record = make_record("uniform", "none", meter, epochs=0, images=0, seed=cfg.seed, budget=budget, cost=cost,
                         policy=policy, config=cfg)
    record["bits"] = [w, a]
    return SearchResult(policy, record)


@register_runner(RandomConfig)
def random(model: nn.Module, data, budget: int | None, cfg: RandomConfig, *, input_size=None, **_) -> SearchResult:
    """A random policy that meets the budget: the ILP over i.i.d. uniform costs (seeded; ``data`` unused)."""
    cost = cost_model(model, input_size or INPUT_SIZE)
    choices = _choices(cfg.candidates)
    with Meter() as meter:
        rng = np.random.default_rng(cfg.seed)
        layer_cost = rng.random((len(cost.searchable), len(choices)))
        policy = readout(cost, layer_cost, choices, budget, method="random", search_data="none", seed=cfg.seed)
    record = make_record("random", "none", meter, epochs=0, images=0, seed=cfg.seed, budget=budget, cost=cost,
                         policy=policy, config=cfg)
    return SearchResult(policy, record)
