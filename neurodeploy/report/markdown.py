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


def _energy(sec: dict[str, Any]) -> list[str]:
    """Two energy tables kept apart (arithmetic 45 nm; chip), then NeuroBench's metrics beside ours."""
    from ..measure.tables import arithmetic_layers, chip_details, neurobench_text

    if "tables" not in sec:
        return ["## Energy per sample", "", "(energy section from an older run: recompute with `neurodeploy energy RUN_DIR "
                "--recompute`)", ""]
    out = ["## Energy per sample", "",
           "Two tables that are never divided by each other: **[1] arithmetic energy** prices the ANN and the SNN "
           "with the same 45 nm CMOS constants (an ANN-vs-SNN comparison of computation only); **[2] chip energy** "
           "prices the events each target's simulator counted with that chip's profile, beside its latency.", "",
           "### [1] Arithmetic energy (ANN vs SNN, 45 nm CMOS)", "",
           _table(["model", "activity of", "precision", "energy (J)", "E/E_ANN", "convention", "constants"],
                  [[r["model"], r["activity"], r["precision"], r["joules"], r["ratio_to_ann"], r["convention"],
                    r["constants"]] for r in sec["tables"]["arithmetic"]]), "",
           "Sources: " + "; ".join(f"`{k}` {c['value']:g} {c['unit']}: {c['source']}"
                                   for k, c in sec["constants"].items()), "",
           "### [2] Chip energy and latency per inference (each target's profile)", ""]
    rows = sec["tables"]["chip"]
    out += [_table(["target", "profile", "energy (J)", "synops", "spikes", "neuron updates", "activation sparsity",
                    "latency (steps)", "constants", "caveat"],
                   [[r["target"], r["profile"], r["joules"], r["synops"], r["spikes"], r["neuron_updates"],
                     r["activation_sparsity"], r["latency_steps"], r["constants"], r["caveat"]] for r in rows]), "",
            "Events per inference as each target's simulator counted them (the deployed model's activity, "
            "not the source's); latency = T + L x (steps each layer adds).", "",
            f"{sec['tables'].get('baseline', '')}.", ""]
    out += ["Details (per layer: events measured on each target's simulator; constants with sources):", "", "```"]
    out += chip_details(sec) + ["```", ""]
    nb = neurobench_text(sec)
    if nb:
        out += ["### [3] NeuroBench metrics beside ours", "", "```"] + nb[1:] + ["```", ""]
    out += ["Arithmetic energy per layer (table [1], source activity):", "", "```"] + arithmetic_layers(sec) + ["```", ""]
    return out


def _acc(entry: Any) -> Any:
    return entry.get("accuracy") if isinstance(entry, dict) else None


def _ensemble(ens: Any) -> list[str]:
    """The attack ensemble: per model and target, protocol vs per-sample worst case, breaks per member."""
    if not isinstance(ens, dict) or not isinstance(ens.get("source"), dict):
        return []
    rows = []
    for name, e in ens.items():
        if isinstance(e, dict) and "worst_case_accuracy" in e:
            breaks = ", ".join(f"{k} {v}" for k, v in e.get("breaks", {}).items())
            rows.append([name, e.get("samples"), e.get("clean_accuracy"), e.get("protocol_accuracy"),
                         e.get("worst_case_accuracy"), e.get("gap"), breaks or "-"])
    return ["", f"Attack ensemble, preset {ens.get('preset')} ({len(ens.get('members', []))} members, K = "
            f"{ens.get('steps')}, Square {ens.get('query_budget')} queries; ε = {_f(ens.get('epsilon'))} in "
            f"{ens.get('unit')}; {_f(ens.get('seconds'), 1)} s): robust accuracy = samples no member broke; "
            "protocol = HIRE-SNN PGD-K without random start; breaks credited to the first member that found them.",
            "", _table(["model", "samples", "clean", "protocol PGD", "worst case", "gap", "breaks by member"], rows),
            ""]


def _robustness(rob: dict[str, Any]) -> list[str]:
    """Source vs each target: clean, white-box, black-box/transfer and query-only accuracies."""
    src = rob.get("source", {})
    lines = ["## Robustness: before and after deployment", ""]
    rows = [["source (white-box)", _acc(src.get("clean")), _acc(src.get("fgsm")), _acc(src.get("pgd")),
             _acc(src.get("blackbox_fgsm")), _acc(src.get("blackbox_pgd")), _acc(src.get("gaussian")),
             _acc(src.get("query")), (src.get("query") or {}).get("queries_mean")]]
    ann = src.get("ann")
    if isinstance(ann, dict):
        rows.append(["ANN twin (white-box)", _acc(ann.get("clean")), _acc(ann.get("fgsm")), _acc(ann.get("pgd")),
                     None, None, None, None, None])
    from ..attacks.stage import RESERVED  # the robustness section's own keys; every other key is a target

    for name, t in rob.items():
        if name in RESERVED or not isinstance(t, dict):
            continue
        rows.append([f"target {name} (transfer)", _acc(t.get("clean")), _acc(t.get("transfer_fgsm")),
                     _acc(t.get("transfer_pgd")), None, None, None, _acc(t.get("query")),
                     (t.get("query") or {}).get("queries_mean")])
    pgd = src.get("pgd", {})
    lines += [f"ε = {_f(pgd.get('epsilon'))}, PGD α = {_f(pgd.get('step_size'))}, K = {pgd.get('steps')}; "
              f"{src.get('clean', {}).get('samples', '?')} test samples. Targets get the source's adversarial images "
              "(transfer) and a query-only Square attack on their own simulation.", ""]
    lines += [_table(["model", "clean", "FGSM", "PGD", "black-box FGSM", "black-box PGD", "Gaussian", "query",
                      "queries (mean)"], rows), ""]
    for name, t in rob.items():
        if isinstance(t, dict) and t.get("note"):
            lines.append(f"- {name}: {t['note']}")
    lines += _ensemble(rob.get("ensemble"))
    eb = rob.get("event_budget")
    if isinstance(eb, dict) and isinstance(eb.get("source"), dict):
        lines += [f"Event budget: at most {eb.get('budget')} {eb.get('unit')}; robust accuracy (worst case over "
                  f"{', '.join(eb.get('members', []))}): " + ", ".join(
                      f"{n} {_f(e.get('worst_case_accuracy'))}" for n, e in eb.items()
                      if isinstance(e, dict) and "worst_case_accuracy" in e), ""]
    vul = (rob.get("theory") or {}).get("vulnerability")
    if isinstance(vul, dict):
        lines += [f"Adversarial vs random vulnerability (Liu et al. ICML 2024, Thm 4.1), {vul.get('samples')} "
                  f"samples at ε = {_f(vul.get('epsilon'))}: median ρ_adv/ρ_rand = {_f(vul.get('ratio_median'))}, mean "
                  f"input-gradient density ‖∇f_y‖₀/n = {_f(vul.get('gradient_density_mean'))}, "
                  f"Spearman(ratio, density) = {_f(vul.get('spearman_ratio_vs_density'))}.", ""]
    checklist = rob.get("checklist") or []
    if checklist:
        lines += ["", "Gradient-obfuscation checklist (Athalye et al. 2018; HIRE-SNN Table 4):", ""]
        for item in checklist:
            mark = {True: "pass", False: "FAIL", None: "n/a"}.get(item.get("passed"), "?")
            lines.append(f"- ({item.get('item')}) {item.get('check')}: **{mark}** — {item.get('evidence')}")
    sparsity = rob.get("sparsity")
    if isinstance(sparsity, list) and sparsity and isinstance(sparsity[0], dict):
        keys = [k for k in ("layer", "zero_fraction", "l2_norm") if k in sparsity[0]]
        if keys:
            lines += ["", "Input-gradient sparsity per layer (Luu et al. 2025):", "",
                      _table(keys, [[r.get(k) for k in keys] for r in sparsity])]
    return lines + [""]


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
    rows = [["ANN (twin)", src.get("ann_clean_accuracy"), "–", ds.get("n_test")],
            ["SNN (source, torch)", src.get("clean_accuracy"), 1.0, ds.get("n_test")]]
    for name, t in report.get("targets", {}).items():
        rows.append([f"target: {name}", t.get("accuracy"), t.get("agreement_with_source"), t.get("n_samples")])
        ft = t.get("finetuned")
        if isinstance(ft, dict):
            rows.append([f"target: {name}, after {ft.get('epochs')} epochs of deployment-aware fine-tuning",
                         ft.get("accuracy"), ft.get("agreement_with_source"), t.get("n_samples")])
    lines += [_table(["model", "accuracy", "agreement with source", "samples"], rows), ""]
    lines += ["## Source SNN: spiking activity and operations per layer", "", _layers(src.get("layers", [])), ""]
    energy = report.get("energy")
    if isinstance(energy, dict) and "ann" in energy:
        lines += _energy(energy)
    elif src.get("energy"):
        lines += ["## Energy per sample", ""]
        erows = [[k, v.get("ann_joules_per_sample"), v.get("snn_joules_per_sample"), v.get("ann_over_snn"),
                  v.get("equation", "")] for k, v in src["energy"].items() if isinstance(v, dict)]
        lines += [_table(["profile", "ANN (J)", "SNN (J)", "ANN / SNN", "how"], erows), ""]
    for name, t in report.get("targets", {}).items():
        lines += [f"## Target `{name}`", "", f"Simulated {t.get('n_samples')} samples in {_f(t.get('seconds'), 3)} s. "
                  "Lowering (every change the target made):", ""]
        lines += [f"- {line}" for line in t.get("lowering", [])] + [""]
        if t.get("layers"):
            lines += [_layers(t["layers"]), ""]
    if report.get("robustness"):
        lines += _robustness(report["robustness"])
    figs = report.get("figures", [])
    if figs:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figs] + [""]
    return "\n".join(lines)
