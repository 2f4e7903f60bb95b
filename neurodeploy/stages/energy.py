"""The energy stage: energy of the ANN, the source SNN (eq. 7/8) and every simulated target.

Inputs: ``outputs/source.npz`` (the source stage), ``outputs/<target>.npz`` (the simulate stage),
each target's hardware profile. Outputs: ``report.json``: ``energy``, ``source.energy``,
``targets.<name>.energy``; ``figures/energy_*.png``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import NeurodeployError
from ..recipe import TARGETS_DIR, Profile, load_profile
from ..run import SOURCE_OUTPUTS, Run
from . import resume


def energy_stage(run: Run) -> dict[str, Any]:
    """Recount the energy section from the run's persisted counts; refuses before the source stage.
    Runs under the run folder's lock: it sums every target's outputs, so a target another command
    adds meanwhile waits and is counted by that command's own energy stage."""
    with run.locked():
        return _energy_locked(run)


def _energy_locked(run: Run) -> dict[str, Any]:
    from ..measure.stage import measure_report

    report = run.report()
    fp = resume.energy_fp(run)
    n_test = report.get("dataset", {}).get("n_test")
    src = run.load_outputs(SOURCE_OUTPUTS, n_test if isinstance(n_test, int) else None)
    if "source" not in report or src is None:
        raise NeurodeployError(f"{run.dir}: the source stage has not run (no source section in report.json or no "
                               f"{run.outputs_path(SOURCE_OUTPUTS)}); run it first (`neurodeploy simulate "
                               f"{run.dir}` does)")
    outs, profiles = {}, {}
    for name, entry in report.get("targets", {}).items():
        out = run.load_outputs(name, entry.get("n_samples"))
        if out is None:
            continue
        outs[name] = out
        if entry.get("profile"):
            profiles[name] = report_profile(run, name, entry["profile"])
    section = measure_report(run.model, src.layer_spikes, outs, profiles, exact=src.synops)
    report["energy"] = section
    report["source"]["energy"] = section["by_profile"]
    for name, t in section["targets"].items():
        chip = t.get("chip")
        report["targets"][name]["energy"] = {
            "profile": t.get("profile"),
            "chip_joules_per_sample": chip["joules_per_sample"] if chip else None,
            "formula_joules_per_sample": {p: v["joules_per_sample"] for p, v in t["snn"].items()},
        }
    report["figures"] = sorted(set(report.get("figures", [])) | set(_energy_figures(run, section)))
    run.save_report(report)
    resume.record(run, "energy", fp, sections=[["energy"]] + [["targets", n, "energy"] for n in section["targets"]])
    return report


def report_profile(run: Run, target: str, value: Any) -> Profile:
    """The profile ``report.json`` names for ``target``: a packaged profile's name, or a path inside the
    run folder (relative to it). Anything else (``/etc/passwd``, ``../x.toml``) is refused: a report is
    data, and the paths it names are never opened outside those two places."""
    where = f"{run.dir / 'report.json'}: targets.{target}.profile = {value!r}"
    if not isinstance(value, str):
        raise NeurodeployError(f"{where}; must be a profile name")
    if "/" not in value and "\\" not in value and (TARGETS_DIR / f"{value}.toml").is_file():
        return load_profile(TARGETS_DIR / f"{value}.toml")
    p = Path(value)
    resolved = (p if p.is_absolute() else run.dir / p).resolve()
    if not any(resolved.is_relative_to(root.resolve()) for root in (run.dir, TARGETS_DIR)):
        shipped = ", ".join(sorted(q.stem for q in TARGETS_DIR.glob("*.toml")))
        raise NeurodeployError(f"{where}; a report names a packaged profile ({shipped}) or a file inside the run "
                               "folder, nothing else is opened")
    return load_profile(resolved)


def _energy_figures(run: Run, section: dict[str, Any]) -> list[str]:
    from ..report.figures_energy import save_energy_figures

    paths = save_energy_figures(section, run.dir / "figures")
    return [str(Path(p).relative_to(run.dir)) for p in paths]
