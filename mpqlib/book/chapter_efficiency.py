"""Chapter 4's tables and figures (efficiency): the cost and QAT accuracy of every class of search,
measured ratios to SEAM beside the paper's, search length and proxy size, and the cost model's
projection to ImageNet."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from . import display
from ..study import report
from .._io import read_json
from .display import FIG_WIDTH, fmt_pct, fmt_ratio, model_label
from ..study.efficiency import ASSUMPTIONS
from ..study.facts import PAPER
from .results import Reader

ASSUMED_JOINT = "{}-{} epochs".format(*ASSUMPTIONS["joint_epochs_range"]["value"])


class EfficiencyChapter(Reader):
    """Chapter 4: efficiency.json in tables, sentences and figures."""

    EFF_NAMES = {"seam": "SEAM on the proxy", "target-equal-epochs": "target, equal epochs",
                 "target-equal-steps": "target, equal steps", "joint": "joint weights + bits (FracBits class)",
                 "evaluation": "evaluation-based", "orthogonality": "orthogonality (OMPQ class), proxy",
                 "orthogonality-target": "orthogonality, target", "limpq": "LIMPQ", "hawq": "HAWQ"}

    def efficiency(self) -> dict:
        """efficiency.json, as the study wrote it (its model glued for the text)."""
        eff = self.r.efficiency()
        display.glue("eff_model", model_label(eff.get("model") or self.p.efficiency_model()))
        return eff

    def efficiency_tables(self, eff: dict):
        """(methods table, ratios table): cost and QAT accuracy of every class of search; measured
        ratios to SEAM beside the paper's (a contended figure is flagged, not given as a result)."""
        import pandas as pd

        rows = []
        fp = eff.get("fp_train_seconds")
        host = eff.get("ratios_host")
        for name, m in eff["methods"].items():
            why = (eff.get("contention") or {}).get(name)
            whole = self.pipeline_seconds(fp, m)
            where = ("this host" if m.get("host") == host else f"{m.get('host') or 'an unknown host'}")
            rows.append({"method": self.EFF_NAMES.get(name, name), "top-1": fmt_pct(m.get("top1_mean")),
                         "95% CI": report.fmt_ci(m["ci_low"], m["ci_high"]).replace(" pp", "").replace("+", "")
                         if m.get("ci_low") is not None else "n/a",
                         "BitOps": report.fmt_bitops(m["bitops"]) if m.get("bitops") else "n/a",
                         "search time": self.seconds_text(m),
                         "timed on": f"{where}, {m.get('repeats', 1)} run{'s' if m.get('repeats', 1) != 1 else ''}"
                                     + ("" if m.get("timed") else " (protocol record)"),
                         "whole pipeline": report.fmt_seconds(whole) if whole is not None else "n/a",
                         "memory (MB)": self.memory_text(m),
                         "measured alone": "no (contended)" if why else "yes"})
        seam_m = eff["methods"].get("seam", {})
        whole = self.pipeline_seconds(fp, seam_m)
        display.glue("eff_pipeline", (f"{seam_m['seconds'] / whole:.0%} of SEAM's whole pipeline (full-precision training "
                                      f"{report.fmt_seconds(fp)}, search, QAT {report.fmt_seconds(seam_m['qat_seconds'])})")
                     if whole else "not measured in this run")
        paper = {"joint/seam": fmt_ratio(PAPER["joint_over_seam"]),
                 "limpq/seam": "{:g}-{:g}x".format(*PAPER["limpq_over_seam"])}
        rat = []
        for key, r in eff.get("ratios", {}).items():
            a = key.split("/")[0]
            rat.append({"search": self.EFF_NAMES.get(a, a), "cost / SEAM (ours)": self.ratio_text(r),
                        "paper": paper.get(key, "—")})
        ratios = eff.get("ratios", {})

        def measured(key: str) -> str:
            return self.ratio_text(ratios.get(key) or {}, missing="not measured on one host")

        display.glue("eff_eval_ratio", measured("evaluation/seam"))
        display.glue("eff_joint_ratio", measured("joint/seam"))
        display.glue("eff_target_ratio", measured("target-equal-epochs/seam"))
        display.glue("eff_steps_ratio", measured("target-equal-steps/seam"))
        display.glue("eff_epochs4_ratio", self.curve_ratio(eff, 4))
        display.glue("eff_limpq_ratio", measured("limpq/seam"))
        display.glue("eff_machine", str(host or "no single host"))
        timed = [m for m in eff["methods"].values() if m.get("timed") and m.get("host") == host]
        reps = sorted({m["repeats"] for m in timed})
        display.glue("eff_timed", (f"{len(timed)} of the {len(eff['methods'])} searches were timed again on this host, "
                                   f"{'-'.join(map(str, reps[::max(len(reps) - 1, 1)]))} runs each (median, range in brackets)"
                                   if timed else "no search was timed again on one host yet"))
        sf, mem = eff.get("startup_fraction"), eff.get("search_vs_fp_peak_memory")
        display.glue("eff_startup", f"{sf:.0%} of a one-epoch proxy search" if sf is not None else "not measured in this run")
        display.glue("eff_memory", f"{fmt_ratio(mem, 2)} the peak of a full-precision training step" if mem is not None
                     else "not measured in this run")
        seam = eff["methods"].get("seam", {})
        display.glue("eff_memory_note", self.memory_note(eff))
        display.glue("eff_seam_seconds", report.fmt_seconds(seam["seconds"]) if seam.get("seconds") is not None else "n/a")
        display.glue("eff_all_rows", "; ".join(
            f"{self.EFF_NAMES.get(n, n)} {measured(f'{n}/seam') if n != 'seam' else '1x'} at "
            f"{fmt_pct(m.get('top1_mean'))}" for n, m in eff["methods"].items()))
        display.glue("eff_seam_top1", fmt_pct(seam.get("top1_mean")))
        return self.table(pd.DataFrame(rows)), self.table(pd.DataFrame(rat))

    @staticmethod
    def seconds_text(m: Mapping) -> str:
        """A search's time: the median of its timed runs with their range, or its one record."""
        if m.get("seconds") is None:
            return "n/a"
        text = report.fmt_seconds(m["seconds"])
        if (m.get("repeats") or 1) > 1 and m.get("seconds_low") is not None:
            text += f" ({report.fmt_seconds(m['seconds_low'])}-{report.fmt_seconds(m['seconds_high'])})"
        return text

    @staticmethod
    def ratio_text(r: Mapping, missing: str = "n/a") -> str:
        """A measured ratio with its range over the repeats; a contended one flagged; a pair of two
        hosts (or a missing time) as ``missing``: no number divides two CPUs."""
        if r.get("value") is not None:
            rng = (f" ({fmt_ratio(r['low'])}-{fmt_ratio(r['high'])})"
                   if r.get("low") is not None and r["low"] != r["high"] else "")
            return fmt_ratio(r["value"]) + rng
        if r.get("contended_value") is not None:
            return f"{fmt_ratio(r['contended_value'])} (measured under contention)"
        return missing

    @staticmethod
    def curve_ratio(eff: Mapping, epochs: int) -> str:
        """Target over SEAM at equal epochs from the search-length runs (``target@N``/``seam@N``),
        where both ran alone on one host."""
        from ..study.timing import HostMismatch, same_host_ratio

        curve = eff.get("search_length") or {}
        t, s = curve.get(f"target@{epochs}"), curve.get(f"seam@{epochs}")
        if not t or not s:
            return "not measured"
        if t.get("contended") or s.get("contended"):
            return "not measured alone"
        try:
            return f"{fmt_ratio(same_host_ratio(t, s))} (on {t['host']}, one run each)"
        except HostMismatch:
            return f"not measured on one host ({t.get('host') or 'unknown'} vs {s.get('host') or 'unknown'})"

    @staticmethod
    def memory_note(eff: Mapping) -> str:
        """Why SEAM's peak is what it is: its own increase where recorded, else its shorter
        searches (a search's memory does not grow with its epochs: it repeats the same batches)."""
        seam = eff["methods"].get("seam", {})
        if seam.get("peak_mb") is None:
            return ""
        if seam.get("added_mb") is not None:
            return (f"SEAM's search itself added {seam['added_mb']:,.0f} MB to the {seam['peak_mb'] - seam['added_mb']:,.0f} MB "
                    "its process held before it.")
        shorter = [v["peak_mb"] for k, v in eff.get("search_length", {}).items()
                   if k.startswith("seam@") and int(k.split("@")[1]) < (seam.get("epochs") or 0) and v.get("peak_mb")]
        if not shorter or seam["peak_mb"] <= 1.2 * max(shorter):
            return ""
        return (f"SEAM's {seam['peak_mb']:,.0f} MB is such a case: the same search for fewer epochs peaked at "
                f"{min(shorter):,.0f}-{max(shorter):,.0f} MB (the search-length rows below), and a search's memory does not "
                "grow with its epochs (each repeats the same batches), so the rest was held by its process before the "
                "search began.")

    @staticmethod
    def memory_text(m: Mapping) -> str:
        """The process's peak resident memory during the search, and what the search itself added
        to what the process already held (recorded from protocol version 3 on)."""
        if m.get("peak_mb") is None:
            return "n/a"
        return f"{m['peak_mb']:,.0f}" + (f" (+{m['added_mb']:,.0f})" if m.get("added_mb") is not None else "")

    @staticmethod
    def pipeline_seconds(fp: float | None, m: Mapping) -> float | None:
        """Full-precision training + the search + one QAT run (mean over seeds): what a user pays
        for a policy, of which the search is the part the paper's cost ratios compare."""
        if fp is None or m.get("seconds") is None or m.get("qat_seconds") is None:
            return None
        return fp + m["seconds"] + m["qat_seconds"]

    def show_cost_accuracy(self, eff: dict) -> None:
        """Search cost (log) against the QAT top-1 of the policy found, with 95% CIs; one marker per
        class of search, contended costs hollow."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 4.6))
        markers = "osD^vP*Xh"
        for i, (name, m) in enumerate(eff["methods"].items()):
            if m.get("seconds") is None or m.get("top1_mean") is None:
                continue
            lo, hi = m.get("ci_low"), m.get("ci_high")
            err = [[m["top1_mean"] - lo], [hi - m["top1_mean"]]] if lo is not None else None
            contended = bool((eff.get("contention") or {}).get(name))
            ax.errorbar(max(m["seconds"], 1e-2), m["top1_mean"], yerr=err, fmt=markers[i % len(markers)],
                        color=f"C{i}", mfc="none" if contended else f"C{i}", capsize=3, ms=7,
                        label=self.EFF_NAMES.get(name, name))
        ax.set_xscale("log")
        if any((eff.get("contention") or {}).values()):
            ax.set_title("hollow: cost measured while other jobs shared the cores")
        ax.set_xlabel("search wall time (s, log scale)")
        ax.set_ylabel("top-1 after QAT (%)")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        plt.show()

    @staticmethod
    def ci_errors(points: list[dict]) -> np.ndarray:
        """Error bars (2 x n) from each point's 95% CI around its mean; 0 where a point has none."""
        err = [[p["top1_mean"] - p["ci_low"], p["ci_high"] - p["top1_mean"]] if p.get("ci_low") is not None
               else [0.0, 0.0] for p in points]
        return np.array(err, float).T

    def show_curves(self, eff: dict) -> None:
        """Search length (SEAM and the target search read out after N epochs) and proxy size
        (images per class) against the QAT top-1 of the policy and the search time."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.3))
        curve = eff.get("search_length") or {}
        for kind, c in (("seam", "C3"), ("target", "C0")):
            pts = sorted(((int(k.split("@")[1]), v) for k, v in curve.items() if k.startswith(kind + "@")))
            if pts:
                x = [v["seconds"] for _, v in pts]
                y = [v["top1_mean"] for _, v in pts]
                a1.errorbar(x, y, yerr=self.ci_errors([v for _, v in pts]), capsize=3, marker="o", color=c, label=self.EFF_NAMES["seam" if kind == "seam" else
                                                                         "target-equal-epochs"].split(",")[0])
                for (n, _), xi, yi in zip(pts, x, y):
                    a1.annotate(f"{n} ep", (xi, yi), textcoords="offset points", xytext=(0, 6), fontsize=8,
                                ha="center", color=c)
        a1.set_xscale("log")
        a1.xaxis.set_minor_formatter(NullFormatter())
        a1.set_xlabel("search time (s, log)")
        a1.set_ylabel("top-1 after QAT (%)")
        a1.set_title("search length")
        sizes = sorted(((int(k), v) for k, v in (eff.get("proxy_size") or {}).items()))
        if sizes:
            a2.errorbar([n for n, _ in sizes], [v["top1_mean"] for _, v in sizes], capsize=3,
                        yerr=self.ci_errors([v for _, v in sizes]), marker="o", color="C3", label="top-1 (95% CI)")
            a2.set_ylabel("top-1 after QAT (%)")
            tw = a2.twinx()
            tw.plot([n for n, _ in sizes], [v["seconds"] for _, v in sizes], marker="s", ls=":", color="C7")
            tw.set_ylabel("search time (s)", color="C7")
            tw.spines["right"].set_visible(True)
            a2.set_xscale("log")
            a2.xaxis.set_minor_formatter(NullFormatter())
        a2.set_xlabel("proxy images per class (log)")
        a2.set_title("proxy size")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        plt.show()

    def projection_table(self, eff: dict):
        """The cost model's ImageNet ratios to SEAM per architecture beside the paper's, and the
        factors each ratio is made of (MobileNetV1)."""
        import pandas as pd

        proj = eff.get("imagenet") or {}
        archs = proj.get("archs", {})
        paper = {"joint/seam": fmt_ratio(PAPER["joint_over_seam"]),
                 "limpq/seam": "{:g}-{:g}x".format(*PAPER["limpq_over_seam"])}
        keys = sorted({k for a in archs.values() for k in a.get("ratios", {})})
        rows = []
        for k in keys:
            a = k.split("/")[0]
            rows.append({"search": self.EFF_NAMES.get(a, a),
                         **{f"{model_label(arch)} (projected)": fmt_ratio(archs[arch]["ratios"].get(k))
                            for arch in archs}, "paper": paper.get(k, "—")})
        fac = []
        first = next(iter(archs.values()), {})
        for k, f in (first.get("factors") or {}).items():
            if f:
                a = k.split("/")[0]
                fac.append({"search": self.EFF_NAMES.get(a, a), "data size": fmt_ratio(f["data_size"], 2),
                            "epochs": fmt_ratio(f["epochs"], 2), "frozen backbone": fmt_ratio(f["frozen_backbone"], 2),
                            "method": fmt_ratio(f["method"], 2)})
        mb = archs.get("mobilenetv1", first).get("ratios", {})
        display.glue("proj_joint", fmt_ratio(mb.get("joint/seam")))
        display.glue("proj_limpq", fmt_ratio(mb.get("limpq/seam")))
        display.glue("proj_eval", fmt_ratio(mb.get("evaluation/seam")))
        implied = archs.get("mobilenetv1", first).get("implied_joint_epochs")
        display.glue("proj_implied_epochs", f"about {implied:.0f}" if implied else "n/a")
        share = (proj.get("assumptions") or {}).get("proxy_share", {}).get("value")
        display.glue("proj_proxy_share", f"{share:.0%}" if share is not None else "n/a")
        chosen = archs.get("mobilenetv1", first)
        display.glue("proj_verdict", self.cost_verdict(chosen))
        display.glue("proj_range", f"{fmt_ratio(chosen['low'])}-{fmt_ratio(chosen['high'])}"
                     if chosen.get("low") is not None else "not projected")
        skipped = proj.get("not_projected") or {}
        display.glue("proj_not_projected", "; ".join(f"{model_label(a)}: {why}" for a, why in skipped.items()) or "none")
        missing = proj.get("missing") or {}
        display.glue("proj_missing", ", ".join(missing) + " (their projections are n/a; the reasons are in efficiency.json)"
                     if missing else "none")
        return self.table(pd.DataFrame(rows)), self.table(pd.DataFrame(fac))

    @staticmethod
    def cost_verdict(proj: Mapping) -> str:
        """The cost claim judged on the projection of one architecture: FracBits' 297x against the
        range of joint/SEAM over the assumed joint-search lengths (the paper does not give it);
        LIMPQ's 3.4-4.25x against our ratio (within a factor of 2 counts as agreeing). The
        projection rests on stated assumptions and measured per-image costs, not on ImageNet runs."""
        parts = []
        ratios = proj.get("ratios") or {}
        low, high = proj.get("low"), proj.get("high")
        joint_paper = PAPER["joint_over_seam"]
        if low is None or high is None:
            parts.append("joint (FracBits class): not projected")
        else:
            where = ("within" if low <= joint_paper <= high else
                     f"{joint_paper / high:.1f} times above" if joint_paper > high else f"{low / joint_paper:.1f} times below")
            parts.append(f"joint (FracBits class) over SEAM, projected {fmt_ratio(low)}-{fmt_ratio(high)} "
                         f"(its unknown length {ASSUMED_JOINT}): the paper's {fmt_ratio(joint_paper)} is {where} that range")
        ours = ratios.get("limpq/seam")
        lo, hi = PAPER["limpq_over_seam"]
        if ours is None:
            parts.append("LIMPQ: not projected")
        else:
            word = ("agrees within a factor of 2 with" if lo / 2 <= ours <= hi * 2 else
                    f"is {lo / ours:.1f} times below" if ours < lo else f"is {ours / hi:.1f} times above")
            parts.append(f"LIMPQ over SEAM, projected {fmt_ratio(ours)}, {word} the paper's {lo:g}-{hi:g}x")
        return "; ".join(parts)

    def show_projection_curve(self, eff: dict) -> None:
        """Projected joint / SEAM on ImageNet against the joint search's length, the assumed range
        shaded, the paper's 297x as a line."""
        import matplotlib.pyplot as plt

        proj = eff.get("imagenet") or {}
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.4))
        lo_e, hi_e = (proj.get("assumptions") or {}).get("joint_epochs_range", {}).get("value", (None, None))
        for i, (arch, a) in enumerate((proj.get("archs") or {}).items()):
            curve = a.get("joint_curve") or {}
            if curve:
                ax.plot([int(e) for e in curve], list(curve.values()), marker="o", color=f"C{i}",
                        label=f"{model_label(arch)} (projected)")
        if lo_e is not None:
            ax.axvspan(lo_e, hi_e, color="C7", alpha=0.15, label=f"assumed length, {lo_e}-{hi_e} epochs")
        ax.axhline(PAPER["joint_over_seam"], color="C3", ls="--", label=f"paper: {fmt_ratio(PAPER['joint_over_seam'])}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("joint search length on ImageNet (epochs, log)")
        ax.set_ylabel("joint / SEAM search cost (log)")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        plt.show()

    def transfer_table(self, eff: dict):
        """The per-image ratios the projection carries to ImageNet (assumption per_image_transfers),
        as measured by the harness here (CPU, 28 x 28) beside the same ratios measured at 224 x 224
        on a GPU (benchmarks/bench_gpu_steps.py; its committed results, benchmarks/gpu_steps-*.json)."""
        import pandas as pd

        per = (eff.get("imagenet") or {}).get("per_image_seconds", {})
        frozen = per.get("frozen")
        rows = {"joint step / search step": ("unfrozen", "joint"),
                "QAT step / search step": ("finetune", "qat"),
                "forward pass / search step": ("forward", "eval")}
        cols = {f"{model_label(eff.get('model') or self.p.efficiency_model())}, here, 28 px":
                {k: (per[c] / frozen if per.get(c) is not None and frozen else None) for k, (c, _) in rows.items()}}
        devices = []
        for path in self.p.gpu_step_files():  # the profile's gpu_steps
            g = read_json(path)
            devices.append(g.get("device", path.stem))
            for arch, m in g.get("models", {}).items():
                st = m["steps"]
                cols[f"{arch}, {g.get('device', 'GPU').removeprefix('NVIDIA ')}, {g.get('size', 224)} px"] = {
                    k: st[gk]["ms_per_step"] / st["search"]["ms_per_step"] for k, (_, gk) in rows.items()}
        table = [{"per-image cost": k, **{c: fmt_ratio(v[k], 2) for c, v in cols.items()}} for k in rows]
        here = next(iter(cols))
        table[-1][here] += " (assumed)"  # the harness measures no bare forward pass: efficiency's forward_share
        display.glue("transfer_devices", ", ".join(dict.fromkeys(devices)) if devices else "no GPU measurement committed")
        return self.table(pd.DataFrame(table))


__all__ = ["EfficiencyChapter"]
