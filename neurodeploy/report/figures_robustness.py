"""Figures of the attack stage: accuracy against ε (source and every target on one plot), accuracy
against the PGD iterations K, and the input-gradient sparsity per layer.

Every function takes the report's ``robustness`` section (as returned by
:func:`neurodeploy.attacks.stage.robustness_report`) or a part of it, an optional matplotlib
``ax``, and returns the figure. matplotlib is imported here only, with the Agg backend, so the
library never needs a display. :func:`write_robustness_figures` writes the PNGs of a run.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .plotting import new_ax, plt


def _ax(ax, figsize=(6, 3.8)):
    return new_ax(ax, figsize)


def epsilon_label(eps: float) -> str:
    """ε as a person reads it: 0, k/255 for the usual pixel steps, 'unbounded' for ε ≥ 1."""
    if eps >= 1.0:
        return "1 (unbounded)"
    if eps == 0:
        return "0"
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{int(round(k))}/255"
    return f"{Fraction(eps).limit_denominator(1000)}"


def plot_accuracy_vs_epsilon(robustness: dict[str, Any], ax=None, *, title: str | None = None):
    """Accuracy under PGD-K against ε: the source (white-box) and each target (transfer of the
    source's images), from ``robustness["sweeps"]["epsilon"]``; the ε axis is categorical so that
    the unbounded ε = 1 sits beside the small ones."""
    fig, ax = _ax(ax)
    rows = sorted(robustness.get("sweeps", {}).get("epsilon", []), key=lambda r: r["epsilon"])
    pos = np.arange(len(rows))
    if rows:
        ax.plot(pos, [r["accuracy"] for r in rows], "o-", lw=4, ms=9, alpha=0.5, color="black",
                label="source (white-box)")
        names: list[str] = []
        for r in rows:
            names += [n for n in r.get("others", {}) if n not in names]
        for n in names:
            ax.plot(pos, [r.get("others", {}).get(n, np.nan) for r in rows], "s--", label=f"{n} (transfer)")
        ax.set_xticks(pos, [epsilon_label(r["epsilon"]) for r in rows], rotation=30, ha="right")
        ax.legend(fontsize="small")
        steps = rows[-1].get("steps")
        ax.set_xlabel(f"ε (L∞), PGD-{steps}" if steps is not None else "ε (L∞)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.set_title(title or "Accuracy under attack against ε")
    return fig


def plot_accuracy_vs_steps(robustness: dict[str, Any], ax=None):
    """PGD accuracy against the number of iterations K (``robustness["sweeps"]["steps"]``)."""
    fig, ax = _ax(ax)
    rows = sorted(robustness.get("sweeps", {}).get("steps", []), key=lambda r: r["steps"])
    if rows:
        ax.plot([r["steps"] for r in rows], [r["accuracy"] for r in rows], "o-", lw=2)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel(f"PGD iterations K (ε = {epsilon_label(rows[0]['epsilon'])}, α = {rows[0]['step_size']:.3g})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy against PGD iterations")
    return fig


def plot_gradient_sparsity(sparsity: Sequence[dict[str, Any]] | dict[str, Any], ax=None):
    """Per layer: the fraction of exactly-zero entries of ∂L/∂(layer input) (bars, left axis) and
    the mean per-sample L2 norm of that gradient (line, right axis, log scale)."""
    rows = sparsity.get("sparsity", []) if isinstance(sparsity, dict) else list(sparsity)
    fig, ax = _ax(ax, figsize=(7, 3.8))
    x = np.arange(len(rows))
    ax.bar(x, [r["zero_fraction"] for r in rows], color="tab:blue", alpha=0.8, label="zero fraction")
    ax.set_xticks(x, [f"{r['layer']} ({r['kind']})" for r in rows], fontsize="small", rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of zero gradient entries")
    norms = [r["l2_norm"] for r in rows]
    if rows and all(n > 0 for n in norms):
        ax2 = ax.twinx()
        ax2.plot(x, norms, "o-", color="tab:red", label="L2 norm")
        ax2.set_yscale("log")
        ax2.set_ylabel("mean L2 norm per sample", color="tab:red")
    ax.set_title("Input-gradient sparsity per layer (layer input)")
    return fig


def write_robustness_figures(robustness: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``robustness_epsilon.png``, ``robustness_steps.png`` and ``gradient_sparsity.png``
    (those with data) into ``out_dir``; returns the paths written."""
    pyplot = plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    sweeps = robustness.get("sweeps", {})
    if sweeps.get("epsilon"):
        jobs.append(("robustness_epsilon.png", plot_accuracy_vs_epsilon))
    if sweeps.get("steps"):
        jobs.append(("robustness_steps.png", plot_accuracy_vs_steps))
    if robustness.get("sparsity"):
        jobs.append(("gradient_sparsity.png", plot_gradient_sparsity))
    written = []
    for name, fn in jobs:
        fig = fn(robustness)
        try:
            fig.savefig(out / name, dpi=120)
        finally:
            pyplot.close(fig)
        written.append(out / name)
    return written
