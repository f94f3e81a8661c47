"""Chapter 2's tables and figures (the searches): the policies each method finds at the main
budget, SEAM's bits per kind of layer, each policy's agreement with the search on the target, and
the fit of SEAM's head against a linear probe."""

from __future__ import annotations

import math

import numpy as np

from . import display
from ..study import ranks, report
from .results import Reader
from .display import BIT_COLOURS, FIG_WIDTH, budget_label, fmt_num, fmt_pct, model_label, policy_label

HEAD_THRESHOLD = 0.9  # the protocol: the SEAM head must reach 90% of the linear probe's accuracy


class SearchChapter(Reader):
    """Chapter 2: the searched policies, layer groups, agreement and head fit."""

    MAIN = ("seam-mnist", "seam-mnist-argmax", "seam-optdigits", "seam-fmnist4", "ce-mnist", "target-fmnist",
            "limpq-fmnist", "hawq-fmnist", "uniform")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # per model, what the chapter's sentences quote from its tables (filled as they are shown)
        self._searched: dict[str, dict] = {}
        self._agree: dict[str, tuple] = {}
        self._groups: dict[str, list] = {}

    def searched(self, model: str | None = None) -> dict:
        """The main budget's policies of ``model`` (search seed 0) and the random ones."""
        ex = self.r.ex(model)
        if ex.model_name not in self._searched:  # random policies and readouts solve an ILP each: once
            names = list(self.MAIN) + [f"random-{i}" for i in range(self.p.n_random)]
            self._searched[ex.model_name] = {n: ex.search(n) for n in names}
        return self._searched[ex.model_name]

    def policy_table(self, model: str | None = None):
        ex = self.r.ex(model)
        res = self.searched(model)
        rows = []
        for n in self.MAIN:
            pol = res[n].policy
            w, a = pol.mean_bits()
            rows.append({"policy": policy_label(n), "search data": res[n].record.get("search_data", "none"),
                         "BitOps": ex.cost.bitops(pol), "of budget": ex.cost.bitops(pol) / ex.budget,
                         "mean bits w / a": f"{w:.2f} / {a:.2f}"})
        import pandas as pd

        return self.table(pd.DataFrame(rows), {"BitOps": report.fmt_bitops, "of budget": "{:.1%}"},
                          caption=f"{model_label(ex.model_name)} at {budget_label(ex.budget_name)} "
                                  f"({report.fmt_bitops(ex.budget)} BitOps)")

    def decisiveness_table(self):
        """How sure each differentiable search was of its policy (every model, every search seed the
        protocol ran): layers whose best candidate leads the next by the threshold, for both the
        weights and the activations, and the median lead, against the no-preference probability."""
        import pandas as pd

        rows, seam = [], []
        for m in self.models:
            for n, res in self.searched(m).items():
                d = getattr(res, "decisiveness", None)
                if not d:
                    continue
                det = [v["determined"] for v in d.values()]
                med = [v["median_margin"] for v in d.values()]
                first = next(iter(d.values()))
                rows.append({"model": model_label(m), "policy": policy_label(n), "search seeds": len(d),
                             "layers determined": f"{min(det)}-{max(det)} of {first['layers']}" if min(det) != max(det)
                             else f"{det[0]} of {first['layers']}",
                             "median lead": f"{np.median(med):.3f} ({min(med):.3f}-{max(med):.3f})",
                             "no preference": f"{first['no_preference']:.2f}"})
                if n == "seam-mnist":
                    span = f"{min(det)}-{max(det)}" if min(det) != max(det) else f"{det[0]}"
                    seam.append(f"{model_label(m)}: {span} of {first['layers']} layers, median lead "
                                f"{np.median(med):.3f} over {len(d)} search seeds")
        threshold = next((next(iter(r.decisiveness.values()))["threshold"] for m in self.models
                          for r in self.searched(m).values() if getattr(r, "decisiveness", None)), None)
        display.glue("decisive_threshold", f"{threshold:g}" if threshold is not None else "n/a")
        display.glue("decisive_seam", "; ".join(seam) or "not recorded")
        return self.table(pd.DataFrame(rows) if rows else pd.DataFrame({"decisiveness": ["not recorded"]}))

    def search_summary(self) -> None:
        """Glue chapter 2's sentences (every model): budgets, readout shares, agreement."""
        def share(m, name):
            ex = self.r.ex(m)
            return f"{100 * ex.cost.bitops(ex.search(name).policy) / ex.budget:.1f}%"

        display.glue("search_budgets", self.r.joined(lambda m: f"{budget_label(self.r.ex(m).budget_name)} "
                                                             f"({report.fmt_bitops(self.r.ex(m).budget)} BitOps)"))
        display.glue("search_ilp_share", self.r.joined(lambda m: share(m, "seam-mnist")))
        display.glue("search_argmax_share", self.r.joined(lambda m: share(m, "seam-mnist-argmax")))

    @staticmethod
    def short_layer(name: str) -> str:
        return (name.replace("layer", "L").replace(".conv", ".c").replace(".downsample.0", ".sc")
                .replace("features.", "f").replace(".depthwise", ".dw").replace(".pointwise", ".pw"))

    def show_policies(self, model: str | None = None) -> None:
        """Bits per layer (columns, network order) of each searched policy (rows): weights and
        activations in two figures, no numbers in the cells (the colour bar reads them)."""
        import matplotlib.pyplot as plt
        from matplotlib.colors import BoundaryNorm, ListedColormap

        ex = self.r.ex(model)
        res = self.searched(model)
        names = [n for n in self.MAIN]
        layers = ex.cost.names
        top = max(max(res[n].policy.bits[l]) for n in names for l in layers)
        cmap = ListedColormap([BIT_COLOURS.get(b, "#999999") for b in range(2, top + 1)])
        norm = BoundaryNorm(np.arange(1.5, top + 1), cmap.N)
        for k, what in ((0, "weight bits"), (1, "activation bits")):
            m = np.array([[res[n].policy.bits[l][k] for l in layers] for n in names])
            fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.3 * len(names) + 1.6))
            im = ax.imshow(m, cmap=cmap, norm=norm, aspect="auto")
            ax.set_yticks(range(len(names)), [policy_label(n) for n in names])
            ax.set_xticks(range(len(layers)), [self.short_layer(l) for l in layers], rotation=90)
            ax.set_title(f"{model_label(ex.model_name)}: {what} per layer")
            fig.colorbar(im, ax=ax, ticks=range(2, top + 1), label="bits", fraction=0.04)
            plt.show()

    def layer_groups(self, model: str | None = None):
        """Mean weight / activation bits of SEAM's policy per kind of layer (the paper: shortcut
        1x1 convs get up to 6 bits, most 3x3 convs 2-4)."""
        import pandas as pd

        ex = self.r.ex(model)
        pol = ex.search("seam-mnist").policy
        kinds = {c.name: ("shortcut 1x1" if "downsample" in c.name else "depthwise" if c.kind == "dwconv" else
                          "1x1 conv" if "pointwise" in c.name or "pw" in c.name else "3x3 conv")
                 for c in ex.cost.searchable}
        rows = []
        for kind in dict.fromkeys(kinds.values()):
            bits = [pol.bits[n] for n, k in kinds.items() if k == kind]
            rows.append({"layers": kind, "count": len(bits), "mean w bits": np.mean([b[0] for b in bits]),
                         "mean a bits": np.mean([b[1] for b in bits]), "max w bits": max(b[0] for b in bits)})
        self._groups[ex.model_name] = rows
        return self.table(pd.DataFrame(rows), {"mean w bits": "{:.2f}", "mean a bits": "{:.2f}"})

    def layer_groups_summary(self) -> None:
        """Glue SEAM's mean (weight, activation) bits per kind of layer, every model."""
        for m in self.models:
            if m not in self._groups:
                self.layer_groups(m)
        def groups(m):
            text = ", ".join(f"{r['layers']} W{r['mean w bits']:.1f}/A{r['mean a bits']:.1f}" for r in self._groups[m])
            short = [r for r in self._groups[m] if r["layers"] == "shortcut 1x1"]
            if short:
                text += (f" (shortcut 1x1 weights at most {short[0]['max w bits']} bits, where the paper's ResNet-18 "
                         "policy gives them up to 6)")
            return text
        display.glue("groups_text", self.r.joined(groups))

    def agreement(self, model: str | None = None):
        """Each policy against the target-searched one: share of layers with the same (w, a),
        mean |bit difference| per layer, Spearman of the per-layer bits; random policies give chance."""
        import pandas as pd

        ex = self.r.ex(model)
        res = self.searched(model)
        layers = ex.cost.names
        ref = res["target-fmnist"].policy
        vec = lambda p: np.array([b for l in layers for b in p.bits[l]], float)  # noqa: E731
        rows = []
        for n, r in res.items():
            if n in ("target-fmnist", "seam-mnist-argmax"):
                continue
            p = r.policy
            rows.append({"policy": n, "same (w, a)": np.mean([p.bits[l] == ref.bits[l] for l in layers]),
                         "mean |bit diff|": np.mean([abs(p.bits[l][0] - ref.bits[l][0]) +
                                                     abs(p.bits[l][1] - ref.bits[l][1]) for l in layers]),
                         "Spearman of bits": self._rank_agreement(vec(p), vec(ref))})
        df = pd.DataFrame(rows)
        rnd = df[df.policy.str.startswith("random")]
        seam = df.set_index("policy").loc["seam-mnist"]
        closer = [policy_label(n) for n, d in zip(df.policy, df["mean |bit diff|"])
                  if not n.startswith("random") and n != "seam-mnist" and d < seam["mean |bit diff|"]]
        self._agree[ex.model_name] = (seam["mean |bit diff|"], rnd["mean |bit diff|"].mean(),
                                      bool(seam["mean |bit diff|"] < rnd["mean |bit diff|"].min()), len(rnd), closer)
        df["policy"] = df["policy"].map(policy_label)
        return self.table(df, {"same (w, a)": "{:.0%}", "mean |bit diff|": "{:.2f}",
                               "Spearman of bits": lambda v: fmt_num(v)},
                          caption=f"{model_label(ex.model_name)}: each policy against the search on the target")

    def agreement_summary(self) -> None:
        """Glue the agreement sentence after :meth:`agreement` ran for every model."""
        for m in self.models:
            if m not in self._agree:
                self.agreement(m)
        display.glue("agree_text", self.r.joined(lambda m: f"SEAM {self._agree[m][0]:.2f} against "
                                                         f"{self._agree[m][1]:.2f} for {self._agree[m][3]} random policies"))
        def verdict(m):
            seam, mean, best, _, closer = self._agree[m]
            words = ("closer than every random policy" if best else "closer than the random policies' mean, "
                     "not than every one" if seam < mean else "no closer than random policies")
            return words + (f", but {', '.join(closer)} {'is' if len(closer) == 1 else 'are'} closer still"
                            if closer else ", and closer than every other method")
        display.glue("agree_verdict", self.r.joined(verdict))

    @staticmethod
    def _rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
        """Spearman of two bit vectors; NaN (shown n/a) where one is constant (uniform)."""
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return math.nan
        return ranks.spearman(a, b)

    @staticmethod
    def head_verdict(ratios: dict[str, float]) -> str:
        """Whether the head reaches :data:`HEAD_THRESHOLD` of the probe, model by model where they
        differ: "reaches", "does not reach", "reaches (on ResNet-20, not on MobileNetV1)"."""
        ok = {m: bool(math.isfinite(r) and r >= HEAD_THRESHOLD) for m, r in ratios.items()}
        yes, no = [m for m, v in ok.items() if v], [m for m, v in ok.items() if not v]
        return "reaches" if not no else "does not reach" if not yes else \
            f"reaches (on {', '.join(yes)}, not on {', '.join(no)})"

    def head_fit(self):
        """SEAM's L-GM head and a linear probe on the same frozen features (held-out proxy split),
        per model: the head must reach >= 90% of the probe."""
        import pandas as pd

        rows = []
        for m in self.models:
            h = self.r.ex(m).head_accuracy()
            head, probe = h.get("seam_proxy_acc"), h.get("linear_probe_acc")
            ratio = head / probe if head is not None and probe else math.nan
            rows.append({"model": model_label(m), "SEAM head": head, "linear probe": probe, "head / probe": ratio,
                         "train: head": h.get("seam_proxy_train_acc"), "train: probe": h.get("linear_probe_train_acc")})
        df = pd.DataFrame(rows)
        by = df.set_index("model")

        def text(m):
            r = by.loc[model_label(m)]
            ratio = f"{r['head / probe']:.0%}" if math.isfinite(r["head / probe"]) else "n/a"
            return f"{fmt_pct(r['SEAM head'], 1)} against {fmt_pct(r['linear probe'], 1)} ({ratio})"

        display.glue("head_text", self.r.joined(text))
        display.glue("head_verdict", self.head_verdict(dict(zip(df["model"], df["head / probe"]))))
        display.glue("head_threshold", f"{HEAD_THRESHOLD:.0%}")
        pct = lambda v: fmt_pct(v, 1)  # noqa: E731  (head_report gives percent)
        return self.table(df, {"SEAM head": pct, "linear probe": pct, "head / probe": "{:.0%}",
                               "train: head": pct, "train: probe": pct})


__all__ = ["HEAD_THRESHOLD", "SearchChapter"]
