"""Figures of the measure stage: per-layer activity (source and each target's simulation) and energy,
arithmetic (ANN vs SNN, 45 nm) and chip (each target's profile) in separate panels.

Every function takes an optional matplotlib ``ax`` and returns the figure. matplotlib is imported
here only, with the Agg backend, so the library never needs a display.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .plotting import new_ax, plt


def _ax(ax, figsize=(7, 3.5)):
    return new_ax(ax, figsize)


def _bars(ax, labels: list[str], series: dict[str, list[float]], ylabel: str, log: bool = False) -> None:
    x = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, [v if v is not None else 0.0 for v in vals], width, label=name)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend(fontsize="small")


def plot_activity(tables: dict[str, list[dict[str, Any]]], ax=None, metric: str = "sa"):
    """Per-layer SA (HIRE-SNN Definition 1) or TASA, one bar group per neuron layer, one bar per model.

    ``tables``: model name ("source", each target) -> layer rows (``layer_table`` rows or any dicts
    with ``name``/``neuron_layer``, ``sa``, ``tasa``). Rows without neurons (pooling, ADD, readout)
    are skipped. Without ``ax`` a figure with two panels (SA and TASA) is made.
    """
    if ax is None:
        fig, axes = plt().subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
        plot_activity(tables, axes[0], "sa")
        plot_activity(tables, axes[1], "tasa")
        return fig
    labels: list[str] = []
    for rows in tables.values():
        for r in rows:
            lab = r.get("neuron_layer", r["name"]) if "neuron_layer" in r else r["name"]
            if lab and r.get("neurons", 1) and lab not in labels:
                labels.append(lab)
    series = {}
    for model, rows in tables.items():
        by = {(r.get("neuron_layer", r["name"]) if "neuron_layer" in r else r["name"]): r.get(metric) for r in rows}
        series[model] = [by.get(lab) for lab in labels]
    _bars(ax, labels, series, "SA (spikes / neuron)" if metric == "sa" else "TASA (SA / T)")
    ax.set_title("Spiking activity per layer" if metric == "sa" else "Time-averaged spiking activity")
    return ax.figure


def _layer_series(section: dict[str, Any], precision: str) -> tuple[list[str], dict[str, list[float]]]:
    """Arithmetic energy per layer (45 nm): the ANN and the SNN by eq. 7/8 (formula, exact)."""
    layers = [r["name"] for r in section["layers"]]
    series: dict[str, list[float]] = {}
    ann = {e["name"]: e["joules"] for e in section["ann"].get(precision, {}).get("layers", [])}
    series[f"ANN {precision}"] = [ann.get(n) for n in layers]
    snn = {e["name"]: e for e in section["snn"].get(precision, {}).get("layers", [])}
    series[f"SNN {precision} (formula)"] = [snn.get(n, {}).get("joules") for n in layers]
    if all(snn.get(n, {}).get("exact_joules") is not None for n in layers):
        series[f"SNN {precision} (exact)"] = [snn[n]["exact_joules"] for n in layers]
    return layers, series


def _chip_series(section: dict[str, Any]) -> tuple[list[str], dict[str, list[float]]]:
    """Chip energy per synaptic layer (and the neuron layer it drives), one series per target."""
    layers: list[str] = []
    series: dict[str, dict[str, float]] = {}
    for name, t in section.get("targets", {}).items():
        if t.get("chip"):
            series[f"{name} ({t['chip']['profile']})"] = {e["name"]: e["joules"] for e in t["chip"]["layers"]}
            layers += [e["name"] for e in t["chip"]["layers"] if e["name"] not in layers]
    return layers, {k: [v.get(n) for n in layers] for k, v in series.items()}


def plot_energy_layers(section: dict[str, Any], ax=None, precision: str = "fp32"):
    """Energy per sample per layer (log scale), two panels never compared: arithmetic (ANN, SNN by eq.
    7/8 at 45 nm) and chip (each target's events by its profile). With ``ax``: the arithmetic panel only."""
    if ax is not None:
        fig = ax.figure
        axes = [ax]
    else:
        fig, axes = plt().subplots(1, 2, figsize=(12, 3.8), constrained_layout=True)
    layers, series = _layer_series(section, precision)
    _bars(axes[0], layers, {k: [v * 1e9 if v else None for v in vals] for k, vals in series.items()}, "nJ / sample",
          log=True)
    axes[0].set_title(f"Arithmetic energy per layer ({section['profile']} {precision})", fontsize="medium")
    if len(axes) > 1:
        layers, series = _chip_series(section)
        if series:
            _bars(axes[1], layers, {k: [v * 1e9 if v else None for v in vals] for k, vals in series.items()},
                  "nJ / inference", log=True)
        axes[1].set_title("Chip energy per layer (each target's profile)", fontsize="medium")
    return fig


def plot_energy_total(section: dict[str, Any], ax=None):
    """Total energy per sample (linear, from zero) in two panels with their own axes, never one ratio:
    arithmetic (ANN and SNN, INT32/FP32, 45 nm) and chip (each target by its profile)."""
    if ax is not None:
        fig, axes = ax.figure, [ax]
    else:
        fig, axes = plt().subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    names, vals = [], []
    for p, a in section["ann"].items():
        names.append(f"ANN {p}")
        vals.append(a["joules_per_sample"])
    for p, s in section["snn"].items():
        names.append(f"SNN {p}")
        vals.append(s["joules_per_sample"])
    panels = [(axes[0], names, vals, f"Arithmetic ({section['profile']}): SNN by {section['equation']}")]
    if len(axes) > 1:
        cn, cv = [], []
        for name, t in section.get("targets", {}).items():
            if t.get("chip"):
                cn.append(f"{name}\n({t['chip']['profile']})")
                cv.append(t["chip"]["joules_per_sample"])
        panels.append((axes[1], cn, cv, "Chip energy per inference (profiles; Loihi: Loihi 1 constants)"))
    for a, n, v, title in panels:
        colors = ["tab:gray" if x.startswith("ANN") else "tab:blue" if x.startswith("SNN") else "tab:orange"
                  for x in n]
        a.bar(n, [x * 1e6 for x in v], color=colors)
        a.set_ylim(bottom=0)  # linear from zero: a log axis over a narrow range exaggerates differences
        a.set_ylabel("uJ / sample")
        a.set_title(title, fontsize="medium")
        for i, x in enumerate(v):
            a.annotate(f"{x * 1e6:.3g}", (i, x * 1e6), ha="center", va="bottom", fontsize="small")
    return fig


def save_energy_figures(section: dict[str, Any], folder: str | Path) -> list[Path]:
    """Write activity.png, energy_layers.png and energy_total.png into ``folder``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"source": section["layers"], **{n: t["layers"] for n, t in section.get("targets", {}).items()}}
    pyplot = plt()
    out = []
    for fname, fig in (("activity.png", plot_activity(tables)), ("energy_layers.png", plot_energy_layers(section)),
                       ("energy_total.png", plot_energy_total(section))):
        path = folder / fname
        fig.savefig(path, dpi=110)
        pyplot.close(fig)
        out.append(path)
    return out
