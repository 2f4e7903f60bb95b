"""The papers' claims as paired comparisons over seeds, and their evaluation on a study's runs.

A :class:`Claim` compares quantity ``a`` (recipe ``a``, metric ``Comparison.metric``) with quantity
``b`` (recipe ``b``, metric ``Comparison.b_metric`` or the same metric) on the seeds both recipes
ran, in the paper's direction (+1: a > b, −1: a < b, 0: a ≈ b within ``margin``). Each comparison
is evaluated on the source SNN and, where the metric exists there, on every deployed target
(``deployed = True``): does the claim survive the chip? The verdict rule is :mod:`.stats`'.

The claims (HIRE-SNN: Kundu, Pedram, Beerel, ICCV 2021; paper 2: Luu et al. 2025, "Accuracy-
robustness trade-off via spiking neural network gradient sparsity trail", arXiv 2509.23762):

- Table 2: HIRE > traditional BPTT under white-box and black-box FGSM/PGD, at equal clean accuracy;
- Fig. 3: HIRE's TASA lower than BPTT's;
- Fig. 8: PGD accuracy falls with ε and saturates with K;
- Table 5: frozen threshold/leak worse than learnable;
- paper 2: avg-pool raises clean accuracy and lowers robustness vs max-pool, with denser input
  gradients (a lower fraction of exactly-zero entries of ∂L/∂image).

The ``paper`` strings quote only what the papers state (the abstract's numbers for Table 2); where
no number is transcribed here, the paper's direction is given and the cell says so.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from .runs import RunResult, eps_key
from .stats import paired_test, verdict

#: Margin of the equivalence comparisons ("equal clean accuracy", "saturates"): 2 percentage points.
MARGIN = 0.02


@dataclass(frozen=True)
class Comparison:
    metric: str
    direction: int
    b_metric: str = ""  # another metric of recipe b (sweep points); "" = the same metric
    margin: float = 0.0
    deployed: bool = True
    label: str = ""


@dataclass(frozen=True)
class Claim:
    key: str
    title: str
    source: str  # the paper's table / figure
    paper: str  # the paper's own number or statement
    a: str  # recipe names
    b: str
    comparisons: tuple[Comparison, ...]


@dataclass
class ClaimRow:
    """One comparison of a claim on one side (``where``: source or a target name)."""

    claim: str
    metric: str
    where: str
    direction: int
    margin: float
    seeds: list[int]
    test: dict = field(default_factory=dict)
    verdict: str = "inconclusive"
    note: str = ""


def _value(run: RunResult, metric: str, where: str) -> float | None:
    if where == "source":
        v = run.metrics.get(metric)
        if v is None and metric in ("clean", "fgsm", "pgd"):
            v = getattr(run, metric)
        return v
    t = run.deployed.get(where, {})
    v = t.get(metric)
    return float(v) if isinstance(v, (int, float)) else None


def _wheres(runs: Iterable[RunResult]) -> list[str]:
    out: list[str] = []
    for r in runs:
        for name in r.deployed:
            if name not in out:
                out.append(name)
    return out


def evaluate_claim(claim: Claim, runs: Sequence[RunResult]) -> list[ClaimRow]:
    """Every comparison of ``claim`` on the source and each target, over the seeds both sides ran."""
    by = {(r.recipe, r.seed): r for r in runs}
    seeds = sorted({r.seed for r in runs if r.recipe == claim.a} & {r.seed for r in runs if r.recipe == claim.b})
    rows: list[ClaimRow] = []
    involved = [by[(n, s)] for s in seeds for n in {claim.a, claim.b}]
    for c in claim.comparisons:
        for where in ["source"] + (_wheres(involved) if c.deployed else []):
            a, b, used, missing = [], [], [], []
            for s in seeds:
                va = _value(by[(claim.a, s)], c.metric, where)
                vb = _value(by[(claim.b, s)], c.b_metric or c.metric, where)
                if va is None or vb is None:
                    missing.append(s)
                    continue
                a.append(va), b.append(vb), used.append(s)
            label = c.label or (c.metric if not c.b_metric else f"{c.metric} vs {c.b_metric}")
            row = ClaimRow(claim.key, label, where, c.direction, c.margin, used)
            if where != "source" and not used:
                errs = {by[(n, s)].deployed.get(where, {}).get("error") for s in seeds for n in (claim.a, claim.b)}
                errs.discard(None)
                if not errs:
                    continue  # the metric is not measured on this target (e.g. TASA): no row
                row.note = "; ".join(sorted(errs))
                rows.append(row)
                continue
            if not used:
                row.note = "not measured"
                rows.append(row)
                continue
            t = paired_test(a, b, c.margin if c.direction == 0 else None)
            row.test, row.verdict = t.to_dict(), verdict(t, c.direction, c.margin)
            if missing:
                row.note = f"seeds without the metric: {missing}"
            rows.append(row)
    return rows


def evaluate_claims(claims: Sequence[Claim], runs: Sequence[RunResult]) -> list[dict]:
    """``[{claim fields..., rows: [ClaimRow as dict]}]`` for every claim whose recipes ran."""
    names = {r.recipe for r in runs}
    out = []
    for c in claims:
        if c.a in names and c.b in names:
            d = asdict(c)
            d["rows"] = [asdict(r) for r in evaluate_claim(c, runs)]
            out.append(d)
    return out


# ----------------------------------------------------------------------------- the claims
def hire_claims(hire: str, bptt: str, frozen: str = "", eps_first: float = 0.0, eps_last: float = 0.0,
                k_mid: int = 20, k_max: int = 40, tag: str = "", unit: str = "") -> list[Claim]:
    """HIRE-SNN's claims for one model/dataset: recipes ``hire`` (Algorithm 1), ``bptt`` (traditional)
    and ``frozen`` (HIRE with frozen θ/λ); the ε sweep compared between ``eps_first`` and
    ``eps_last``, the K sweep between ``k_mid`` and ``k_max`` (saturation) and 1 and ``k_max``.
    ``unit`` names ε's unit in the labels when it is not an L∞ pixel ε (``"events"``: the event
    budget of :mod:`.events`)."""
    p = f"{tag}: " if tag else ""
    lab = (lambda m: f"{m} (budget in {unit}, {'1 step' if m.endswith('fgsm') else 'iterative'})") if unit else \
        (lambda m: "")  # noqa: E731  (event data: FGSM/PGD are the one-step / iterative budget attacks)
    claims = [
        Claim(f"{tag}table2", p + "HIRE > BPTT under white-box and black-box FGSM/PGD at equal clean accuracy",
              "HIRE-SNN Table 2",
              "up to +13.7 pp (FGSM) and +10.1 pp (PGD) over traditional training, negligible clean loss "
              "(abstract; Table 2, CIFAR-10/100)", hire, bptt,
              (Comparison("clean", 0, margin=MARGIN, label="clean (≈, ±2 pp)"), Comparison("fgsm", 1, label=lab("fgsm")),
               Comparison("pgd", 1, label=lab("pgd")), Comparison("blackbox_fgsm", 1, deployed=False,
                                                                  label=lab("blackbox_fgsm")),
               Comparison("blackbox_pgd", 1, deployed=False, label=lab("blackbox_pgd")))),
        Claim(f"{tag}fig3", p + "HIRE's TASA lower than BPTT's", "HIRE-SNN Fig. 3",
              "HIRE's time-averaged spiking activity below the traditional SNN's (direction; no number "
              "transcribed here)", hire, bptt, (Comparison("tasa", -1, deployed=False),)),
    ]
    if eps_last > eps_first > 0:
        claims.append(Claim(
            f"{tag}fig8", p + "PGD accuracy falls with ε and saturates with K", "HIRE-SNN Fig. 8",
            "accuracy decreases as ε grows and levels off as K grows (direction; no number transcribed here)",
            hire, hire,
            (Comparison(eps_key(eps_first), 1, b_metric=eps_key(eps_last),
                        label=f"{eps_first:g} {unit} > {eps_last:g} {unit}" if unit
                        else f"ε {eps_first:.3g} > ε {eps_last:.3g}"),
             Comparison("k=1", 1, b_metric=f"k={k_max}", deployed=False, label=f"K 1 > K {k_max}"),
             Comparison(f"k={k_mid}", 0, b_metric=f"k={k_max}", margin=MARGIN, deployed=False,
                        label=f"K {k_mid} ≈ K {k_max} (±2 pp)"))))
    if frozen:
        claims.append(Claim(
            f"{tag}table5", p + "frozen θ/λ worse than learnable", "HIRE-SNN Table 5",
            "learnable threshold and leak give higher clean and robust accuracy than frozen ones (direction; "
            "no number transcribed here)", hire, frozen,
            (Comparison("clean", 1), Comparison("fgsm", 1, label=lab("fgsm")), Comparison("pgd", 1, label=lab("pgd")))))
    return claims


def rate_claims(hire: str, rate: str, tag: str = "") -> list[Claim]:
    """HIRE-SNN's comparison with the rate-coded SNNs of Sharmin et al. (ECCV 2020): recipe ``hire``
    (direct input, low T) against ``rate`` (Poisson/Bernoulli rate input, a larger T), white-box."""
    p = f"{tag}: " if tag else ""
    return [Claim(f"{tag}rate", p + "HIRE (direct input) ≥ rate-coded SNN under FGSM/PGD, at a far lower T",
                  "HIRE-SNN abstract (vs Sharmin et al. 2020)",
                  "outperforms SNNs trained on rate-coded inputs, with improved or similar accuracy on attack-"
                  "generated images, at up to 25× lower latency (abstract)", hire, rate,
                  (Comparison("fgsm", 1), Comparison("pgd", 1),
                   Comparison("clean", 0, margin=MARGIN, deployed=False, label="clean (≈, ±2 pp)")))]


def pooling_claims(avg: str, mx: str, tag: str = "") -> list[Claim]:
    """Paper 2's claim for one model/dataset: recipe ``avg`` (average stem pooling) vs ``mx`` (max)."""
    p = f"{tag}: " if tag else ""
    return [Claim(f"{tag}pooling", p + "avg-pool: higher clean accuracy, lower robustness, denser input gradients "
                  "than max-pool", "Luu et al. 2025 (SEW-ResNet, max vs avg pooling)",
                  "average pooling generalises better but is more vulnerable; its input gradients are denser "
                  "(direction; no number transcribed here)", avg, mx,
                  (Comparison("clean", 1), Comparison("fgsm", -1), Comparison("pgd", -1),
                   Comparison("grad_zero", -1, deployed=False, label="∂L/∂x zero fraction")))]
