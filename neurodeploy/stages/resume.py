"""Stage-by-stage resume: a ledger (``stages.json``) of what each finished stage was computed from.

Every stage, when it has written its artifacts and its report sections, records an entry::

    "simulate:lava": {"fingerprint": <hash of its inputs>, "stamp": <fresh id>,
                      "files": {"outputs/lava.npz": <sha256>}, "sections": [["targets", "lava"]]}

A stage is *done* when its entry's fingerprint equals the fingerprint of its inputs now, every file
it lists still has the recorded content and every report section it wrote is still in report.json.
The fingerprint hashes the recipe fields the stage reads, the content of the artifacts it reads
and the ``stamp`` of the stages it builds on, so redoing a stage (or editing a field of the recipe
it reads) invalidates every stage after it, even when the redone artifact is byte-identical.
``neurodeploy run`` on a folder a killed run left behind skips what is done and redoes the rest.
An entry is written last (after the artifact's atomic rename and the report update), so a kill
in between leaves the stage not done: it is redone, never half-trusted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any, Iterable

from ..errors import NeurodeployError
from ..run import LEDGER_FILE, SOURCE_OUTPUTS, Run
from ..util import jsonable, write_json_atomic

log = logging.getLogger(__name__)

LEDGER = LEDGER_FILE
_digests: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime_ns) -> sha256


def file_digest(path: str | Path) -> str | None:
    """The SHA-256 of a file's content (None when absent), cached per (inode, size, mtime)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def fingerprint(*parts: Any) -> str:
    """A stage's fingerprint: the SHA-256 of its inputs as canonical JSON."""
    return hashlib.sha256(json.dumps(jsonable(parts, finite=False), sort_keys=True).encode()).hexdigest()[:24]


def read_ledger(run: Run) -> dict[str, dict[str, Any]]:
    """stages.json (empty before any stage finished), checked for its shape."""
    path = run.dir / LEDGER
    if not path.is_file():
        return {}
    fix = "; delete it to redo every stage"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise NeurodeployError(f"{path}: corrupt stage ledger ({e}){fix}") from None
    if not isinstance(data, dict):
        raise NeurodeployError(f"{path}: must hold a JSON object, not {type(data).__name__}{fix}")
    for key, e in data.items():
        ok = (isinstance(e, dict) and isinstance(e.get("fingerprint"), str) and isinstance(e.get("stamp"), str)
              and isinstance(e.get("files"), dict) and all(isinstance(v, str) for v in e["files"].values())
              and isinstance(e.get("sections"), list)
              and all(isinstance(s, list) and all(isinstance(k, str) for k in s) for s in e["sections"]))
        if not ok:
            raise NeurodeployError(f"{path}: entry {key!r} must be {{fingerprint, stamp, files, sections}}{fix}")
    return data


def stamp(run: Run, key: str) -> str | None:
    """The stamp of stage ``key``'s last recorded completion (None: never recorded)."""
    return read_ledger(run).get(key, {}).get("stamp")


def stale(run: Run, key: str, fp: str) -> bool:
    """True when ``key`` was recorded from other inputs than ``fp`` (an artifact to rebuild)."""
    e = read_ledger(run).get(key)
    return e is not None and e["fingerprint"] != fp


def is_done(run: Run, key: str, fp: str) -> bool:
    """Whether stage ``key`` finished from inputs with fingerprint ``fp`` and its files and report
    sections are still there, unchanged."""
    e = read_ledger(run).get(key)
    if e is None or e["fingerprint"] != fp:
        return False
    if any(file_digest(run.dir / rel) != digest for rel, digest in e["files"].items()):
        return False
    report = run.report() if e["sections"] else {}
    for path in e["sections"]:
        node: Any = report
        for k in path:
            if not isinstance(node, dict) or k not in node:
                return False
            node = node[k]
    return True


def record(run: Run, key: str, fp: str, files: Iterable[str] = (), sections: Iterable[list[str]] = ()) -> None:
    """Note that stage ``key`` finished from inputs ``fp``, writing ``files`` (relative to the run
    folder) and the report ``sections`` (key paths)."""
    with run.locked():
        ledger = read_ledger(run)
        ledger[key] = {"fingerprint": fp, "stamp": uuid.uuid4().hex[:12],
                       "files": {rel: file_digest(run.dir / rel) or "" for rel in files},
                       "sections": [list(s) for s in sections]}
        write_json_atomic(run.dir / LEDGER, ledger)


def forget(run: Run, *keys: str) -> None:
    """Drop the ledger entries ``keys`` (their stages will run again)."""
    with run.locked():
        ledger = read_ledger(run)
        if any(k in ledger for k in keys):
            for k in keys:
                ledger.pop(k, None)
            write_json_atomic(run.dir / LEDGER, ledger)


def skip(key: str) -> None:
    log.info("resume: stage %s is complete and its inputs are unchanged; skipped", key)


# ------------------------------------------------------------------ the fingerprints of the stages
def _recipe(run: Run, *sections: str) -> dict[str, Any]:
    d = run.recipe.to_dict()
    return {s: d[s] for s in sections}


def _model_files(run: Run) -> dict[str, str | None]:
    """The digests of the source network's files (model.nir for an imported run, else the checkpoints)."""
    names = ("model.nir",) if run.imported else ("snn.safetensors", "ann.safetensors")
    return {n: file_digest(run.dir / n) for n in names}


def train_fp(run: Run) -> str:
    return fingerprint("train", _recipe(run, "seed", "timesteps", "data", "model", "train"))


def import_fp(run: Run, source: Path) -> str:
    return fingerprint("import", str(source), file_digest(source), _recipe(run, "timesteps", "data", "model"))


def export_fp(run: Run) -> str:
    return fingerprint("export", _model_files(run), stamp(run, "train"), _recipe(run, "timesteps", "data"))


def source_fp(run: Run) -> str:
    return fingerprint("source", _model_files(run), _recipe(run, "seed", "timesteps", "data"))


def simulate_fp(run: Run, name: str) -> str:
    from ..profile import TARGETS_DIR
    from ..targets import target_class
    from .deploy import target_options

    profile = target_class(name).profile_name
    return fingerprint("simulate", name, file_digest(run.nir_path), _model_files(run),
                       file_digest(TARGETS_DIR / f"{profile}.toml") if profile else None,
                       target_options(run, name), run.recipe.deploy.max_samples,
                       _recipe(run, "seed", "timesteps", "data"))


def energy_fp(run: Run) -> str:
    targets = run.report().get("targets", {})
    return fingerprint("energy", stamp(run, "source"), file_digest(run.outputs_path(SOURCE_OUTPUTS)),
                       {n: (stamp(run, f"simulate:{n}"), file_digest(run.outputs_path(n)), t.get("profile"))
                        for n, t in targets.items()})


def finetune_net_fp(run: Run, first: str) -> str:
    from .deploy import target_options

    d = run.recipe.deploy
    return fingerprint("finetune-net", _model_files(run), first, target_options(run, first), d.finetune_epochs,
                       d.finetune_lr, _recipe(run, "seed", "timesteps", "data"))


def finetune_fp(run: Run, name: str) -> str:
    return fingerprint("finetune", name, stamp(run, "finetune-net"), stamp(run, f"simulate:{name}"),
                       file_digest(run.dir / "snn_deploy.safetensors"))


def attack_fp(run: Run, targets: list[str]) -> str:
    from .deploy import target_options

    return fingerprint("attack", _model_files(run), file_digest(run.nir_path),
                       {t: target_options(run, t) for t in targets}, stamp(run, "surrogate"),
                       _recipe(run, "seed", "timesteps", "data", "attack"))


def surrogate_fp(run: Run) -> str:
    return fingerprint("surrogate", _recipe(run, "seed", "timesteps", "data", "model", "train"))
