"""report.md: the same numbers as report.json, for a person."""
from __future__ import annotations

from typing import Any


def _f(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3e}"
        return f"{v:.{digits}g}"
    return str(v)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_f(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _layers(rows: list[dict[str, Any]]) -> str:
    keys = ["name", "kind", "neurons", "spikes_per_sample", "sa", "tasa", "flops_ann", "flops_snn"]
    extra = [k for k in ("synops_per_sample",) if any(k in r for r in rows)]
    return _table(keys + extra, [[r.get(k) for k in keys + extra] for r in rows])


def render_markdown(report: dict[str, Any]) -> str:
    """Render the report dict as Markdown (figures referenced from ``figures/``)."""
    src = report.get("source", {})
    ds = report.get("dataset", {})
    lines = [
        f"# neurodeploy report — {report.get('recipe', '?')}",
        "",
        f"Dataset **{ds.get('name')}** ({ds.get('n_train')} train / {ds.get('n_test')} test), "
        f"T = {report.get('timesteps')}, seed {report.get('seed')}, encoding {report.get('encoding', 'direct')}.",
        "",
        "## Accuracy: source and targets",
        "",
    ]
    rows = [["ANN (twin)", src.get("ann_clean_accuracy"), "–", "–"],
            ["SNN (source, torch)", src.get("clean_accuracy"), 1.0, "–"]]
    for name, t in report.get("targets", {}).items():
        rows.append([f"target: {name}", t.get("accuracy"), t.get("agreement_with_source"), t.get("n_samples")])
    lines += [_table(["model", "accuracy", "agreement with source", "samples"], rows), ""]
    lines += ["## Source SNN: spiking activity and operations per layer", "", _layers(src.get("layers", [])), ""]
    energy = src.get("energy", {})
    if energy:
        lines += ["## Energy per sample", ""]
        erows = [[k, v.get("ann_joules_per_sample"), v.get("snn_joules_per_sample"), v.get("ann_over_snn"),
                  v.get("equation", "")] for k, v in energy.items() if isinstance(v, dict)]
        lines += [_table(["profile", "ANN (J)", "SNN (J)", "ANN / SNN", "how"], erows), ""]
    for name, t in report.get("targets", {}).items():
        lines += [f"## Target `{name}`", "", "Lowering (every change the target made):", ""]
        lines += [f"- {line}" for line in t.get("lowering", [])] + [""]
        if t.get("layers"):
            lines += [_layers(t["layers"]), ""]
        if t.get("energy"):
            lines += ["Energy: " + ", ".join(f"{k} = {_f(v)}" for k, v in t["energy"].items()
                                             if not isinstance(v, (dict, list))), ""]
    rob = report.get("robustness", {})
    if rob:
        lines += ["## Robustness", ""]
        rrows = []
        for side, entries in rob.items():
            if not isinstance(entries, dict):
                continue
            for attack, r in entries.items():
                if isinstance(r, dict) and "accuracy" in r:
                    rrows.append([side, attack, r.get("epsilon"), r.get("steps"), r.get("accuracy")])
        lines += [_table(["model", "attack", "ε", "steps", "accuracy"], rrows), ""]
    figs = report.get("figures", [])
    if figs:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figs] + [""]
    return "\n".join(lines)
