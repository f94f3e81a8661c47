"""The claims in words (mpqlib.book.verdicts and the chapters' sentences): no word goes further than
the CI, the power rule or the data behind a pattern."""

from __future__ import annotations

import pandas as pd
import pytest

from mpqlib.book import verdicts as V
from mpqlib.book.chapter_discriminability import DiscriminabilityChapter
from mpqlib.book.chapter_objections import ObjectionsChapter
from mpqlib.book.chapter_observation import ObservationChapter


def claim(cid, lo, hi, verdict, model="mobilenetv1"):
    return {"id": cid, "model": model, "budget": "w2a4", "estimate_pp": (lo + hi) / 2, "ci_low": lo, "ci_high": hi,
            "n": 6, "verdict": verdict, "rule": "equivalence"}


@pytest.mark.parametrize("cid", ["proxy-vs-target", "second-proxy", "tuned-seam-vs-target", "proxy-vs-target-long",
                                 "disjoint-classes-vs-target"])
def test_a_claim_of_a_match_is_contradicted_only_by_a_deficit_beyond_the_margin(cid):
    assert V.claim_stance(claim(cid, -1.2, -0.4, "different")) == "contradicts"
    assert V.claim_stance(claim(cid, -0.45, -0.05, "different")) == "undecided"   # may still be a match
    assert V.claim_stance(claim(cid, 0.4, 0.9, "different")) == "undecided"       # better, not a match
    assert V.claim_stance(claim(cid, -0.2, 0.25, "equivalent (±0.3 pp)")) == "supports"


def test_matches_or_beats_limpq_takes_a_deficit_within_the_margin_as_undecided():
    c = {**claim("seam-vs-limpq", -0.4, -0.1, "worse"), "rule": "difference"}
    assert V.claim_stance(c) == "undecided"
    assert V.claim_stance({**c, "ci_low": -0.9, "ci_high": -0.35}) == "contradicts"
    # a claim that SEAM *beats* uniform is contradicted by any CI below zero
    assert V.claim_stance({**c, "id": "seam-vs-uniform"}) == "contradicts"


def _doc(run_ratio, claims=()):
    return {"claims": list(claims), "budgets": {"mobilenetv1": "w2a4"},
            "power": {"mobilenetv1": {"seed_sd_pp": 0.4, "policy_sd_pp": 0.4 * run_ratio, "ratio": run_ratio}},
            "head": {"mobilenetv1": {"seam_proxy_acc": 80.0, "linear_probe_acc": 85.0}}}


def _pilot(ratio):
    """pilot.json as the study writes it (mpqlib.study.documents.PilotDoc), one model and budget."""
    return {"rule": "largest policy SD / seed SD", "chosen": {"mobilenetv1": "w2a4"}, "power": {"mobilenetv1": ratio >= 2},
            "budgets": {"mobilenetv1": {"w2a4": {"seed_sd_pp": 0.2, "policy_sd_pp": 0.2 * ratio, "ratio": ratio}}}}


def test_the_power_caveat_follows_one_rule_a_miss_in_the_run_or_in_the_pilot():
    assert V.power_caveat(_doc(2.4), "mobilenetv1", _pilot(2.9)) == ""
    run_miss = V.power_caveat(_doc(1.8), "mobilenetv1", _pilot(2.9))
    assert run_miss.startswith("underpowered: power ratio 1.80 in the run, 2.90 in the pilot") and \
        run_miss.endswith("in the run")
    assert V.power_caveat(_doc(2.4), "mobilenetv1", _pilot(1.7)).endswith("in the pilot")
    assert V.power_short(_doc(2.4), "mobilenetv1", _pilot(1.7)) == "underpowered (pilot ratio 1.70 < 2)"
    assert V.power_short({"claims": [], "power": {}}, "mobilenetv1") == "underpowered (power not measured)"


def test_a_claim_the_models_power_ratio_does_not_cover_says_so_beside_its_verdict():
    doc = _doc(2.4, [claim("disjoint-classes-vs-target", -0.2, 0.2, "equivalent (±0.3 pp)"),
                     claim("proxy-vs-target", -0.2, 0.2, "equivalent (±0.3 pp)"),
                     claim("seam-vs-uniform-long", 0.5, 1.0, "better")])
    rows = {r["id"]: r for r in V.claims_rows(doc, "mobilenetv1", _pilot(2.9))}
    assert rows["proxy-vs-target"]["caveat"] == "—"
    assert "classes 0-4" in rows["disjoint-classes-vs-target"]["caveat"]
    assert "1-epoch QAT" in rows["seam-vs-uniform-long"]["caveat"]
    both = V.claim_caveat(_doc(1.5), doc["claims"][2], _pilot(2.9), short=True)
    assert both.startswith("underpowered (ratio 1.50 < 2); ") and "1-epoch QAT" in both


def test_the_plateau_words_say_when_no_plateau_was_shown():
    lq = {"epochs": [1, 2, 5, 10], "qat_seeds": [0, 1], "plateau_pp": 0.2, "plateau_epochs": 10}
    words = ObjectionsChapter.plateau_words(lq)
    assert words.startswith("no plateau shown within 10 epochs") and "without a CI" in words
    assert ObjectionsChapter.plateau_words({**lq, "plateau_epochs": 5}).startswith("5 epochs (a point rule")
    assert ObjectionsChapter.plateau_words({**lq, "plateau_epochs": None}).startswith("not decided")


def test_the_ladder_keeps_the_distance_order_and_names_where_the_estimates_break_it():
    rows = [{"proxy": "near", "estimate_pp": -0.2, "ci_low": -0.5, "ci_high": 0.1},
            {"proxy": "mid", "estimate_pp": -0.1, "ci_low": -0.4, "ci_high": 0.2},
            {"proxy": "noise", "estimate_pp": -3.0, "ci_low": -3.5, "ci_high": -2.5}]
    text = ObjectionsChapter.ladder_words({"ladder": rows})
    assert text.index("near") < text.index("mid") < text.index("noise")
    assert "do not follow the distance order: mid above near" in text
    assert "order not resolved) for near / mid" in text and "mid / noise" not in text
    rows[1]["estimate_pp"] = -0.3
    assert "fall with distance at every step" in ObjectionsChapter.ladder_words({"ladder": rows})


def test_the_margin_trend_does_not_claim_an_overall_fall_that_did_not_happen():
    rises = pd.Series({"FP": 7.0, "W8A8": 6.5, "W4A4": 7.4})
    text = ObservationChapter.margin_trend(rises)
    assert text.startswith("does not fall from FP to W4A4") and "W4A4 keeps 7.40 against W8A8's 6.50" in text


def test_the_correlation_verdict_says_not_shown_and_names_a_better_trivial_predictor():
    sp = {"fisher_ratio": {"rho": 0.3, "ci_low": -0.1, "ci_high": 0.6}, "ptq_top1_target": {"rho": 0.5},
          "mean_bits": {"rho": 0.1}}
    assert DiscriminabilityChapter.corr_verdict(sp) == ("not shown (its CI reaches zero); the target top-1 before "
                                                      "fine-tuning (+0.50) ranks the policies better")
    sp["fisher_ratio"].update(ci_low=0.1, rho=0.6)
    assert DiscriminabilityChapter.corr_verdict(sp) == "supported (its CI lies above zero)"
    sp["fisher_ratio"].update(ci_low=-0.8, ci_high=-0.2, rho=-0.5)
    assert DiscriminabilityChapter.corr_verdict(sp).startswith("contradicted")


def test_the_head_verdict_is_per_model_where_models_differ():
    from mpqlib.book.chapter_search import SearchChapter

    assert SearchChapter.head_verdict({"ResNet-20": 0.95, "MobileNetV1": 0.97}) == "reaches"
    assert SearchChapter.head_verdict({"ResNet-20": 0.93, "MobileNetV1": 0.90 - 0.01}) == \
        "reaches (on ResNet-20, not on MobileNetV1)"
    assert SearchChapter.head_verdict({"ResNet-20": float("nan")}) == "does not reach"


def test_chapter_seven_renders_every_table_figure_and_sentence_from_its_results(tmp_path, monkeypatch):
    """Chapter 7 on a results directory as the full run writes it (objections.json, claims.json,
    pilot.json): every glued sentence, table and figure, with no step computed."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mpqlib.book import display

    glued = {}
    monkeypatch.setattr(display, "glue", lambda name, value: glued.__setitem__(name, value))
    monkeypatch.setattr(plt, "show", lambda: plt.close("all"))
    grid = {m: [{"config": cfg, "val_top1": [88.0 + i / 10, 88.4 + i / 10], "mean": 88.2 + i / 10, "default": i == 0}
                for i, cfg in enumerate(cfgs)]
            for m, cfgs in (("seam", [{"margin": 0.1, "likelihood_weight": 0.01}, {"margin": 1.0, "likelihood_weight": 0.1},
                                      {"classification_weight": 0, "likelihood_weight": 0.01}]),
                            ("ce", [{}, {"lr_arch": 0.05}, {"head_prefit_steps": 0}]))}
    doc = {"model": "mobilenetv1", "budget": "w2a4",
           "tuning": {"validation": {"images": 6000, "per_class": 600}, "search_seeds": [0, 1, 2], "qat_seeds": [0, 1],
                      "grid": grid, "chosen": {"seam": grid["seam"][1]["config"], "ce": None}},
           "long_qat": {"epochs": [1, 2, 5, 10], "qat_seeds": [0, 1], "train_images": None, "plateau_pp": 0.2,
                        "curve": {"uniform": {"1": [86.0, 86.2], "2": [87.0, 87.1], "5": [87.9, 88.0], "10": [88.0, 88.1]},
                                  "target-fmnist": {"1": [88.0, 88.3], "2": [88.8, 89.0], "5": [89.4, 89.5],
                                                    "10": [89.5, 89.6]}},
                        "plateau_epochs": 5},
           "ladder": [{"proxy": "F-MNIST 4%, same classes", "estimate_pp": -0.4, "ci_low": -0.8, "ci_high": 0.0},
                      {"proxy": "noise, random labels", "estimate_pp": -2.5, "ci_low": -3.1, "ci_high": -1.9}],
           "disjoint": {"model": "mobilenetv1-c04", "classes": [0, 1, 2, 3, 4], "proxy_classes": [5, 6, 7, 8, 9],
                        "fp_top1": 95.1}}
    claims = [{**claim(cid, -0.5, 0.1, "not shown equivalent"), "a_units": 3, "b_units": 3}
              for cid in V.OBJECTION_CLAIMS] + [claim("proxy-vs-target", -1.1, -0.4, "different")]
    (tmp_path / "objections.json").write_text(json.dumps(doc))
    (tmp_path / "claims.json").write_text(json.dumps(_doc(2.4, claims)))
    (tmp_path / "pilot.json").write_text(json.dumps(_pilot(2.9)))
    ch = ObjectionsChapter("smoke", {"results_dir": str(tmp_path)})
    got = ch.objections()
    assert got is not None and set(ObjectionsChapter.GLUED) <= set(glued)
    assert glued["obj_plateau"].startswith("5 epochs") and glued["obj_ce_chosen"].startswith("not decided")
    assert glued["obj_premise"].startswith("MobileNetV1 -0.75 [-1.10, -0.40] pp (different: not reproduced")
    assert "fall with distance at every step" in glued["obj_ladder"]
    assert len(ch.tuning_table(got).data) == 6
    ch.show_tuning(got)
    ch.show_plateau(got)
    ch.show_ladder(got)
    table = ch.objection_claims(json.loads((tmp_path / "claims.json").read_text())).data.set_index("claim")
    assert len(table) == len(V.OBJECTION_CLAIMS) and (table["units a / b"] == "3 / 3").all()
    assert "classes 0-4" in table.loc[V.claim_label("disjoint-classes-vs-target"), "caveat"]
