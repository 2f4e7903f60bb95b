"""report.json: its schema version, the keys other tools rely on, and atomic read/update.

The contract (keys other tools and later stages rely on; more may be added freely):
``schema_version, recipe, seed, timesteps, dataset{name, n_train, n_test},
source{clean_accuracy, ann_clean_accuracy, layers[...], energy{...}},
targets{name: {accuracy, agreement_with_source, lowering[...], layers[...]}},
robustness{source: {fgsm{epsilon, accuracy}, pgd{epsilon, step_size, steps, accuracy}}, ...}``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import NeurodeployError
from ..util import jsonable, write_json_atomic

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "recipe", "seed", "timesteps", "dataset", "source")
LAYER_KEYS = ("name", "kind", "neurons", "spikes_per_sample", "sa", "tasa", "flops_ann", "flops_snn")


def read_report(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise NeurodeployError(f"{path}: corrupt report ({e}); delete it to rebuild from the run's artifacts") from None


def write_report(run_dir: str | Path, report: dict[str, Any]) -> None:
    """Write report.json atomically (and nothing else)."""
    write_json_atomic(Path(run_dir) / "report.json", jsonable(report))


def validate_report(report: dict[str, Any]) -> list[str]:
    """Problems with a report against the contract (empty when it satisfies it)."""
    problems = [f"missing key {k!r}" for k in REQUIRED if k not in report]
    src = report.get("source", {})
    for k in ("clean_accuracy", "ann_clean_accuracy", "layers", "energy"):
        if k not in src:
            problems.append(f"missing key 'source.{k}'")
    for row in src.get("layers", []):
        problems += [f"layer {row.get('name')} lacks {k!r}" for k in LAYER_KEYS if k not in row]
    for name, t in report.get("targets", {}).items():
        for k in ("accuracy", "agreement_with_source", "lowering", "layers"):
            if k not in t:
                problems.append(f"target {name} lacks {k!r}")
    return problems
