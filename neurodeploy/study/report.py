"""study.md claim tables and the study figure (matplotlib, Agg backend)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .runs import RunResult
from .stats import ALPHA

_RAW = ("tasa", "∂L/∂x", "grad_zero")  # metrics shown as plain numbers, not percentages


def _fmt(v: float, raw: bool, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if raw:
        return f"{v:+.3f}" if sign else f"{v:.3f}"
    return f"{100 * v:+.1f}" if sign else f"{100 * v:.1f}"


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "—"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def _rule() -> str:
    return (f"Verdict rule (α = {ALPHA}): paired over seeds (same seed = same split and initialisation), "
            "Δ = a − b. Direction > or <: *reproduced* if Δ has the paper's sign and the paired t-test gives "
            "p < α; *not reproduced* if the opposite sign with p < α; else *inconclusive*. Direction ≈ "
            "(within ±margin): *reproduced* if the two one-sided t-tests (TOST) give p < α; *not reproduced* "
            "if |Δ| > margin with p < α; else *inconclusive*. Wilcoxon (exact) and sign-test p are shown "
            "beside; with 5 seeds neither can go below 0.0625.")


def claims_markdown(evaluated: Sequence[dict], runs: Sequence[RunResult], title: str = "", figure: str = "") -> str:
    """Markdown: a verdict overview, then one table per claim (source and deployed rows)."""
    seeds = sorted({r.seed for r in runs})
    lines = [f"# {title or 'Study'}", "",
             f"{len(runs)} runs, seeds {seeds}. Accuracies in %, mean ± std (ddof = 1) over seeds; "
             "Δ in percentage points. 'source' is the trained SNN in PyTorch; other columns are the "
             "deployed network (the source's adversarial images run on the target).", "", _rule(), ""]
    if figure:
        lines += [f"![claims]({figure})", ""]
    lines += ["| claim | paper (source) | ours, source | ours, deployed |", "|---|---|---|---|"]
    for c in evaluated:
        src = [f"{r['metric']}: **{r['verdict']}**" for r in c["rows"] if r["where"] == "source"]
        dep = [f"{r['where']} {r['metric']}: **{r['verdict']}**" for r in c["rows"]
               if r["where"] != "source" and r["test"]]
        notes = {r["where"]: r["note"] for r in c["rows"] if r["where"] != "source" and not r["test"]}
        dep += [f"{w}: {n}" for w, n in notes.items()]  # once per target, not once per metric
        lines.append(f"| {c['title']} | {c['paper']} ({c['source']}) | " + "; ".join(src) + " | "
                     + ("; ".join(dep) or "—") + " |")
    for c in evaluated:
        lines += ["", f"## {c['title']}", "", f"Paper: {c['source']} — {c['paper']}.  ",
                  f"a = `{c['a']}`, b = `{c['b']}`.", "",
                  "| metric | where | paper says | seeds | a | b | Δ = a − b | t | p (t) | p (Wilcoxon) | p (sign) "
                  "| p (TOST) | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            raw = any(k in r["metric"] for k in _RAW)
            want = {1: "a > b", -1: "a < b", 0: f"a ≈ b (±{_fmt(r['margin'], raw)})"}[r["direction"]]
            t = r["test"]
            if not t:
                lines.append(f"| {r['metric']} | {r['where']} | {want} | — | — | — | — | — | — | — | — | — | "
                             f"{r['note']} |")
                continue
            lines.append(
                f"| {r['metric']} | {r['where']} | {want} | {t['n']} | {_fmt(t['mean_a'], raw)} ± {_fmt(t['std_a'], raw)}"
                f" | {_fmt(t['mean_b'], raw)} ± {_fmt(t['std_b'], raw)} | {_fmt(t['mean_diff'], raw, True)} ± "
                f"{_fmt(t['std_diff'], raw)} | {t['t']:.2f} | {_p(t['p_t'])} | {_p(t['p_wilcoxon'])} | "
                f"{_p(t['p_sign'])} | {_p(t['p_tost'])} | **{r['verdict']}**{' (' + r['note'] + ')' if r['note'] else ''} |")
    return "\n".join(lines) + "\n"


def _sweep_curve(runs: Sequence[RunResult], recipe: str, prefix: str, where: str = "source"
                 ) -> tuple[list[float], list[float], list[float]]:
    from .stats import mean_std

    rs = [r for r in runs if r.recipe == recipe]
    table = [r.metrics if where == "source" else r.deployed.get(where, {}) for r in rs]
    keys = sorted({k for t in table for k in t if k.startswith(prefix)}, key=lambda k: float(k[len(prefix):]))
    xs, ms, ss = [], [], []
    for k in keys:
        vals = [t[k] for t in table if isinstance(t.get(k), (int, float))]
        if len(vals) == len(table):
            m, s = mean_std(vals)
            xs.append(float(k[len(prefix):])), ms.append(m), ss.append(s)
    return xs, ms, ss


def plot_claims(evaluated: Sequence[dict], runs: Sequence[RunResult], path: Path) -> Path:
    """One panel per claim: a and b (mean ± std over seeds) per compared metric, source and
    deployed; the Fig. 8 claims as accuracy-vs-ε and accuracy-vs-K curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(evaluated)
    cols = min(3, n)
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(5.2 * cols, 3.6 * math.ceil(n / cols)),
                             squeeze=False)
    for ax, c in zip(axes.flat, evaluated):
        if c["key"].endswith("fig8"):
            wheres = ["source"] + sorted({r["where"] for r in c["rows"] if r["where"] != "source" and r["test"]})
            for where in wheres:
                xs, ms, ss = _sweep_curve(runs, c["a"], "eps=", where)
                if xs:
                    ax.errorbar(xs, ms, yerr=ss, marker="o", capsize=3, label=f"vs ε ({where})")
            ax.set_xscale("symlog", linthresh=1 / 255)
            ax.set_xlabel("ε (PGD)")
            ax2 = ax.twiny()
            xs, ms, ss = _sweep_curve(runs, c["a"], "k=")
            if xs:
                ax2.errorbar(xs, ms, yerr=ss, marker="s", color="tab:red", capsize=3, label="vs K (source)")
                ax2.set_xlabel("K (PGD steps)", color="tab:red")
            ax.set_ylabel("accuracy")
            ax.legend(fontsize=7, loc="upper right")
        else:
            rows = [r for r in c["rows"] if r["test"]]
            labels = [f"{r['metric'].split(' (')[0]} · {r['where']}" for r in rows]
            x = range(len(rows))
            w = 0.38
            for off, side, name in ((-w / 2, "a", c["a"]), (w / 2, "b", c["b"])):
                ax.bar([i + off for i in x], [r["test"][f"mean_{side}"] for r in rows], w,
                       yerr=[r["test"][f"std_{side}"] for r in rows], capsize=3, label=name)
            for i, r in enumerate(rows):
                ax.text(i, 1.02, r["verdict"].replace("not reproduced", "not repr.").replace("inconclusive", "incon."),
                        ha="center", fontsize=6, rotation=0, transform=ax.get_xaxis_transform())
            ax.set_xticks(list(x), labels, fontsize=6, rotation=40, ha="right")
            ax.legend(fontsize=7)
        ax.set_title(f"{c['key']}: {c['source']}", fontsize=8, pad=14)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
