"""The study's facts, each written once: its claims, its policies and the paper's numbers.

Everything else reads them from here: :mod:`mpqlib.study.experiments` (which policies run, which
claims are tested), :mod:`mpqlib.book.verdicts` (their words and the paper's stance),
``claims.json``, the README's results block and the book's first page. The old names
(``experiments.CLAIMS``, ``chapters.CLAIM_TEXT``, ``chapters.PAPER_STANCE``, ``chapters.LABELS``,
``chapters.PAPER``, ``efficiency.PAPER``) are views of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

NO_CLAIM = "the paper makes no such claim"

# --------------------------------------------------------------------------- the protocol's rules
POWER_RULE = 2.0
"""The pre-registered power rule: a budget can tell policies apart when the policy SD is at least
this many seed SDs (book/method.md, Protocol)."""

from ..data import PROXY_PER_CLASS  # noqa: F401  (the paper's 4% proxy: the library's default, one home)


# --------------------------------------------------------------------------- the paper's numbers
PAPER: dict[str, Any] = {
    "source": "SEAM (ACM MM 2023), poster Table 2: MobileNetV1 on ImageNet, '3MP' budget",
    "table2": {  # method -> (top-1 %, BitOps G, search GPU-h or None)
        "LSQ uniform W3A3": (68.3, 5.8, None),
        "FracBits": (68.7, 5.78, 237.2),
        "LIMPQ": (69.5, 5.78, 3.4),
        "SEAM, proxy C": (69.9, 6.28, 1.0),
        "SEAM, proxy S": (69.6, 6.13, 0.8),
    },
    "budget_g": 5.78,
    # ResNet-18 trade-off, read off the poster's plot (about +-0.2 pp): (G BitOps, top-1 %)
    "resnet18_seam": ((16, 68.1), (23, 70.0), (29, 70.6)),
    "resnet18_edmips": ((16, 65.7), (23, 66.8), (29, 67.8)),
}
"""The paper's anchor numbers (book/method.md's table); the chapters show ours beside them. The
search-cost ratios below are derived from Table 2's hours, not typed."""


def _hours_ratio(a: float, b: float, digits: int = 0) -> float:
    """``a / b`` of two of Table 2's hours, rounded half up to ``digits`` as the paper prints it
    (237.2 / 0.8 = 296.5 -> 297; in binary floating point it would fall just below the half)."""
    q = Decimal(str(a)) / Decimal(str(b))
    return float(q.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


_T2 = PAPER["table2"]
# FracBits over SEAM with proxy S (the paper's 297x); LIMPQ over SEAM with proxy C and with proxy S
PAPER["joint_over_seam"] = _hours_ratio(_T2["FracBits"][2], _T2["SEAM, proxy S"][2])
PAPER["limpq_over_seam"] = (_hours_ratio(_T2["LIMPQ"][2], _T2["SEAM, proxy C"][2], 2),
                            _hours_ratio(_T2["LIMPQ"][2], _T2["SEAM, proxy S"][2], 2))
PAPER_HOURS: dict[str, Any] = {
    "source": "SEAM (ACM MM 2023) Table 2, MobileNetV1 on ImageNet, GPU hours of the search",
    "hours": {"fracbits": _T2["FracBits"][2], "limpq": _T2["LIMPQ"][2], "seam-proxy-c": _T2["SEAM, proxy C"][2],
              "seam-proxy-s": _T2["SEAM, proxy S"][2]},
    "ratios": {"joint/seam": PAPER["joint_over_seam"], "limpq/seam": list(PAPER["limpq_over_seam"])},
}
"""The search costs of Table 2 as efficiency.json records them (``efficiency.PAPER``)."""

# Our policy standing for each row of the paper's Table 2 (None: not part of the main comparison).
PAPER_ROWS = {"LSQ uniform W3A3": "uniform", "FracBits": None, "LIMPQ": "limpq-fmnist",
              "SEAM, proxy C": "seam-mnist", "SEAM, proxy S": "seam-optdigits"}


# --------------------------------------------------------------------------- the policies
@dataclass(frozen=True)
class PolicyFact:
    """One policy of the study: the profile's search config behind it (None: not searched),
    its search data (``proxy``: the profile's main proxy; ``target``: the target search's data;
    ``limpq``: LIMPQ's share of the target; else a data spec), whether it runs every search seed
    of the profile (else seed 0), and its name for readers."""

    name: str
    config: str | None
    data: str | None
    seeded: bool
    label: str
    harness: bool = False  # only in the efficiency harness (chapter 4)


POLICY_FACTS: tuple[PolicyFact, ...] = (
    PolicyFact("seam-mnist", "seam", "proxy", True, "SEAM, MNIST proxy"),
    # the same search as seam-mnist, read out per layer with argmax
    PolicyFact("seam-mnist-argmax", "seam", "proxy", False, "SEAM, MNIST, argmax readout"),
    PolicyFact("seam-optdigits", "seam", "optdigits", True, "SEAM, optdigits proxy"),
    PolicyFact("seam-fmnist4", "seam", "fmnist4", True, "SEAM, small Fashion-MNIST subset"),
    PolicyFact("ce-mnist", "ce", "proxy", True, "CE head, MNIST proxy"),
    # Both sides of a claim carry seeds (protocol version 3): the target search, LIMPQ and HAWQ
    # (the seed of its image sample) run every search seed too.
    PolicyFact("target-fmnist", "target", "target", True, "search on the target"),
    PolicyFact("limpq-fmnist", "limpq", "limpq", True, "LIMPQ"),
    PolicyFact("hawq-fmnist", "hawq", "fmnist", True, "HAWQ"),
    # Chapter 7's proxies: no information at all; other classes of the target's own domain
    # (searched for the model of the target's other classes, mpqlib.study.objections)
    PolicyFact("seam-noise", "seam", "noise", True, "SEAM, noise proxy (random labels)"),
    PolicyFact("seam-disjoint", "seam", "disjoint", True, "SEAM, Fashion-MNIST classes 5-9 proxy"),
    # protocol version 4's 2x2, cell D: the target search (the model's own head) on the 4% proxy
    PolicyFact("target-fmnist4", "target", "fmnist4", True, "target search on the 4% Fashion-MNIST proxy"),
    # uniform at the budget's own (w, a): equal BitOps
    PolicyFact("uniform", None, None, False, "uniform"),
    PolicyFact("joint-fmnist", "joint", "target", False, "joint weights + bits (FracBits class)", harness=True),
    PolicyFact("evaluation-fmnist", "evaluation", "target", False, "evaluation-based", harness=True),
    PolicyFact("orthogonality-mnist", "orthogonality", "proxy", False, "orthogonality (OMPQ class), proxy",
               harness=True),
    PolicyFact("orthogonality-fmnist", "orthogonality", "target", False, "orthogonality, target", harness=True),
)

POLICIES = {f.name: (f.config, f.data) for f in POLICY_FACTS if not f.harness}
"""name -> (profile config, search data): the policies compared at one budget."""
HARNESS = {f.name: (f.config, f.data) for f in POLICY_FACTS if f.harness}
"""The efficiency harness's extra classes of search (chapter 4)."""
SEARCH_SEEDED = tuple(f.name for f in POLICY_FACTS if f.seeded)
"""Searches that get every search seed of the profile; the others run once (seed 0)."""
SEEDED_SINCE_V3 = ("target-fmnist", "limpq-fmnist", "hawq-fmnist")
"""Seeded from protocol version 3 on (both sides of a claim carry seeds); once in version 2."""
MAIN_POLICIES = ("seam-mnist", "seam-optdigits", "seam-fmnist4", "ce-mnist", "target-fmnist", "limpq-fmnist",
                 "hawq-fmnist", "uniform")
"""The policies behind the claims at the main budget."""
SECOND_POLICIES = ("seam-mnist", "target-fmnist", "uniform")
"""The few kept at the second budget."""
LABELS = {**{f.name: f.label for f in POLICY_FACTS if not f.harness}, "random": "random policies",
          "seam-mnist-tuned": "SEAM tuned, MNIST proxy", "ce-mnist-tuned": "CE head tuned, MNIST proxy",
          "seam-mnist-long": "SEAM, MNIST (long QAT)", "target-fmnist-long": "search on the target (long QAT)",
          "uniform-long": "uniform (long QAT)",
          # protocol version 4's rows: the same searches and QAT runs at the designs of its tests
          "seam-mnist-h1": "SEAM, MNIST proxy (v4 design)", "target-fmnist-h1": "search on the target (v4 design)",
          "seam-mnist-hp": "SEAM, MNIST (long QAT, v4 design)",
          "target-fmnist-hp": "search on the target (long QAT, v4 design)",
          "seam-fmnist4-d": "SEAM, 4% Fashion-MNIST proxy (2x2)", "target-fmnist-d": "search on the target (2x2)",
          "seam-mnist-d": "SEAM, MNIST proxy (2x2)", "target-fmnist-pilot": "search on the target (budget pilot)"}
"""Reader's names of the policies (the tables show these, the code uses the keys)."""


# --------------------------------------------------------------------------- the claims
@dataclass(frozen=True)
class ClaimFact:
    """One claim: ``a - b`` within QAT seds under ``rule`` (of mpqlib.study.report.RULES; ``random``:
    every random policy), in words (``words``; ``short`` in the README's table), what the paper
    reports and where (``paper``, ``where``: a table or figure, or :data:`NO_CLAIM`), and the
    verdicts that support or contradict the paper (None: a check of the design, no stance);
    ``match``: the paper claims a match, which only a deficit beyond the margin contradicts;
    ``power_note``: why the model's power ratio does not cover this claim ("" where it does)."""

    id: str
    a: str
    b: str
    rule: str
    words: str
    short: str
    paper: str
    where: str
    supports: frozenset[str] | None = None
    contradicts: frozenset[str] | None = None
    # The paper claims a match (the same accuracy; "matches or beats"): a deficit that may lie
    # within the equivalence margin does not go against it, only a 95% CI wholly below -margin.
    match: bool = False
    # Where the power ratio of the claim's model does not cover the claim (another model, another
    # QAT recipe), said beside its verdict.
    power_note: str = ""


# What the paper says, and where, for the claims that more than one test judges.
ABSTRACT_TRANSFER = ("same accuracy as a search on the target (abstract)", "the abstract")
ABSTRACT_MARGIN = ("the large-margin terms make the policy transfer (abstract)", "the abstract")


def _stance(supports: str, contradicts: str) -> dict:
    return {"supports": frozenset({supports}), "contradicts": frozenset({contradicts})}


CLAIM_FACTS: tuple[ClaimFact, ...] = (
    ClaimFact("positive-control", "target-fmnist", "random", "superiority",
              "the budget can tell policies apart: the search on the target beats random policies",
              "target search vs random policies (positive control)", "no claim (a design check)", NO_CLAIM),
    ClaimFact("proxy-vs-target", "seam-mnist", "target-fmnist", "equivalence",
              "a policy searched on the proxy matches one searched on the target (±{margin} pp)",
              "SEAM on MNIST vs target search", *ABSTRACT_TRANSFER,
              **_stance("equivalent", "different"), match=True),
    ClaimFact("seam-vs-ce", "seam-mnist", "ce-mnist", "difference",
              "the large-margin head beats a plain cross-entropy head on the same proxy",
              "SEAM vs CE ablation", *ABSTRACT_MARGIN,
              **_stance("better", "worse")),
    ClaimFact("seam-vs-uniform", "seam-mnist", "uniform", "difference",
              "SEAM beats uniform precision at equal BitOps", "SEAM vs uniform", "{seam_uniform}, Table 2", "Table 2",
              **_stance("better", "worse")),
    ClaimFact("seam-vs-limpq", "seam-mnist", "limpq-fmnist", "difference",
              "SEAM matches or beats LIMPQ", "SEAM vs LIMPQ", "{seam_limpq}, Table 2", "Table 2",
              **_stance("better", "worse"), match=True),
    ClaimFact("seam-vs-hawq", "seam-mnist", "hawq-fmnist", "difference",
              "SEAM against HAWQ (Hessian trace)", "SEAM vs HAWQ", "no claim (Table 2 has no HAWQ row)", NO_CLAIM),
    ClaimFact("second-proxy", "seam-optdigits", "target-fmnist", "equivalence",
              "a second proxy (optdigits) matches the search on the target (±{margin} pp)",
              "SEAM on optdigits vs target search", "proxy S {proxy_s} vs proxy C {proxy_c} top-1, Table 2", "Table 2",
              **_stance("equivalent", "different"), match=True),
    # seam-fmnist4 - seam-mnist: a diagnostic of MNIST's deficit, which the transfer claim already judges
    ClaimFact("fmnist4-control", "seam-fmnist4", "seam-mnist", "difference",
              "a proxy of the same size drawn from the target, minus MNIST",
              "SEAM on Fashion-MNIST 4% vs SEAM on MNIST", "no claim (a diagnostic)", NO_CLAIM),
    # Chapter 7: the objections (protocol version 3)
    ClaimFact("tuned-seam-vs-target", "seam-mnist-tuned", "target-fmnist", "equivalence",
              "SEAM with its settings tuned on a validation split matches the search on the target (±{margin} pp)",
              "tuned SEAM vs target search", *ABSTRACT_TRANSFER,
              **_stance("equivalent", "different"), match=True),
    ClaimFact("tuned-seam-vs-ce", "seam-mnist-tuned", "ce-mnist-tuned", "difference",
              "tuned SEAM beats the tuned cross-entropy ablation", "tuned SEAM vs tuned CE",
              *ABSTRACT_MARGIN,
              **_stance("better", "worse")),
    ClaimFact("proxy-vs-target-long", "seam-mnist-long", "target-fmnist-long", "equivalence",
              "after the long QAT (chapter 7's plateau rule), SEAM on MNIST matches the search on the target (±{margin} pp)",
              "SEAM vs target search, long QAT", *ABSTRACT_TRANSFER, **_stance("equivalent", "different"), match=True,
              power_note="the power ratio was measured under the 1-epoch QAT, not at this length"),
    ClaimFact("seam-vs-uniform-long", "seam-mnist-long", "uniform-long", "difference",
              "after the long QAT (chapter 7's plateau rule), SEAM beats uniform precision", "SEAM vs uniform, long QAT",
              "{seam_uniform}, Table 2", "Table 2", **_stance("better", "worse"),
              power_note="the power ratio was measured under the 1-epoch QAT, not at this length"),
    ClaimFact("noise-control", "seam-mnist", "seam-noise", "difference",
              "MNIST carries information for the search: SEAM on MNIST minus SEAM on noise with random labels",
              "SEAM on MNIST vs SEAM on noise (negative control)", "no claim (a control)", NO_CLAIM),
    # Protocol version 4: the headline at designs sized by the power analysis, and the 2x2 that
    # splits SEAM on MNIST's deficit into the images, the head and the classes
    ClaimFact("headline-1epoch", "seam-mnist-h1", "target-fmnist-h1", "equivalence",
              "at the design the power analysis chose, a policy searched on the proxy matches one searched on "
              "the target (±{margin} pp)", "headline: SEAM on MNIST vs target search", *ABSTRACT_TRANSFER,
              **_stance("equivalent", "different"), match=True),
    ClaimFact("headline-plateau", "seam-mnist-hp", "target-fmnist-hp", "equivalence",
              "after the long QAT, at the design the power analysis chose, SEAM on MNIST matches the search on the "
              "target (±{margin} pp)", "headline, long QAT", *ABSTRACT_TRANSFER,
              **_stance("equivalent", "different"), match=True,
              power_note="the power ratio was measured under the 1-epoch QAT, not at this length"),
    ClaimFact("deficit-data", "target-fmnist4", "target-fmnist-d", "difference",
              "the images alone: the target search on 4% of the target's images minus on all of them",
              "2x2: 4% of the images vs all (own head)", "no claim (a diagnostic of the gap)", NO_CLAIM),
    ClaimFact("deficit-head", "seam-fmnist4-d", "target-fmnist4", "difference",
              "the head alone: SEAM's L-GM head minus the model's own classifier, both on the 4% proxy",
              "2x2: L-GM head vs own head (4% proxy)", "no claim (a diagnostic of the gap)", NO_CLAIM),
    ClaimFact("deficit-classes", "seam-mnist-d", "seam-fmnist4-d", "difference",
              "the classes alone: SEAM on MNIST minus SEAM on the 4% Fashion-MNIST proxy (same size, same head)",
              "2x2: MNIST vs the target's own classes", "no claim (a diagnostic of the gap)", NO_CLAIM),
    ClaimFact("disjoint-classes-vs-target", "seam-disjoint", "target-fmnist", "equivalence",
              "for a model of Fashion-MNIST classes 0-4, a proxy of classes 5-9 matches the search on the target "
              "(±{margin} pp)", "SEAM on other classes vs target search",
              "a proxy with other classes gives the same accuracy (abstract)", "the abstract",
              **_stance("equivalent", "different"), match=True,
              power_note="measured on the model of classes 0-4, whose power ratio was not measured"),
)

CLAIMS = {c.id: (c.a, c.b, c.rule) for c in CLAIM_FACTS}
"""id -> (a, b, rule of mpqlib.study.report.RULES): a - b within QAT seeds; "random" = every random policy."""
CLAIM_TEXT = {c.id: (c.words, c.paper) for c in CLAIM_FACTS}
"""Each claim of claims.json in words, and what the paper reports for it."""
PAPER_STANCE = {c.id: (set(c.supports), set(c.contradicts)) for c in CLAIM_FACTS if c.supports is not None}
"""Claim id -> (verdicts that support the paper, verdicts that contradict it); any other verdict
leaves the claim undecided. A stance only where the paper makes the claim: the positive control
checks the design; HAWQ has no row in the paper's Table 2; the Fashion-MNIST 4% control is a
diagnostic of MNIST's deficit, which the transfer claim already judges (counted once)."""
MATCH_CLAIMS = frozenset(c.id for c in CLAIM_FACTS if c.match)
"""Claims of a match: only a 95% CI wholly below -margin contradicts the paper (ClaimFact.match)."""
POWER_NOTES = {c.id: c.power_note for c in CLAIM_FACTS if c.power_note}
"""Claim id -> why the model's power ratio does not cover it (ClaimFact.power_note)."""
CLAIM_LABELS = {c.id: c.short for c in CLAIM_FACTS}
"""The README's short name of each claim."""
CLAIM_WHERE = {c.id: c.where for c in CLAIM_FACTS}
"""Where the paper reports each claim (a table or figure), or NO_CLAIM."""


def paper_ratio_text() -> str:
    """The paper's joint-over-SEAM search-cost ratio as the README writes it (``297x``)."""
    return f"{PAPER['joint_over_seam']:g}x"


__all__ = ["NO_CLAIM", "PROXY_PER_CLASS", "PAPER", "PAPER_HOURS", "PAPER_ROWS", "PolicyFact", "POLICY_FACTS", "POLICIES", "HARNESS",
           "SEARCH_SEEDED", "SEEDED_SINCE_V3", "MAIN_POLICIES", "SECOND_POLICIES", "LABELS", "ClaimFact", "CLAIM_FACTS", "CLAIMS",
           "CLAIM_TEXT", "PAPER_STANCE", "MATCH_CLAIMS", "POWER_NOTES", "CLAIM_LABELS", "CLAIM_WHERE", "paper_ratio_text"]
