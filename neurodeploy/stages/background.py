"""Work the chain needs later, started in a child process so that it runs on a second core meanwhile.

The black-box surrogate (the recipe trained again with seed + 1, HIRE-SNN §5) does not depend on
anything the run computes: it is only read by the attack stage, after training, export, every
target's simulation and fine-tuning. With two or more cores, :func:`start_surrogate` trains it in a
child process from the start of the chain; :func:`wait_surrogate` (called by ``train_surrogate``)
waits for it. Training is deterministic (``train_recipe`` seeds everything from the recipe, one
torch thread per process, as the Makefile sets), so the checkpoint is the one the attack stage would
have trained itself (``tests/core/test_background.py`` compares them byte for byte).

The child never outlives the chain: it watches its stdin, a pipe only the parent holds, and exits
when the pipe closes (the parent ended or was killed), and :func:`stop_all` kills it when the chain
fails. A child that fails is reported with its log's last lines, and the surrogate is trained in the
main process instead. ``NEURODEPLOY_BACKGROUND=0`` turns the overlap off.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..run import Run

log = logging.getLogger(__name__)

LOG_NAME = "surrogate.log"


@dataclass
class _Job:
    proc: subprocess.Popen
    log_path: Path


_jobs: dict[str, _Job] = {}


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def enabled() -> bool:
    """Overlap only pays with a second core; ``NEURODEPLOY_BACKGROUND=0`` turns it off."""
    return os.environ.get("NEURODEPLOY_BACKGROUND", "1") != "0" and usable_cores() >= 2


def _key(run: Run) -> str:
    return str(run.dir.resolve())


def start_surrogate(run: Run) -> bool:
    """Start training ``run``'s surrogate in a child process when the attack stage will need one
    that is not there yet; returns whether a child was started."""
    from . import resume

    a = run.recipe.attack
    if not enabled() or run.imported or a.blackbox != "seed" or _key(run) in _jobs:
        return False
    if (run.dir / "surrogate.safetensors").is_file() and not resume.stale(run, "surrogate", resume.surrogate_fp(run)):
        return False
    pkg_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (pkg_root, os.environ.get("PYTHONPATH")) if p)}
    log_path = run.dir / LOG_NAME
    with open(log_path, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-m", "neurodeploy.stages.background", str(run.dir)],
                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env)
    _jobs[_key(run)] = _Job(proc, log_path)
    log.info("surrogate (seed %d): training in a background process, pid %d (log: %s)", run.recipe.seed + 1,
             proc.pid, log_path)
    return True


def wait_surrogate(run: Run) -> None:
    """Wait for ``run``'s background surrogate, if one was started; a failed child is logged with
    the end of its log (the caller then trains the surrogate itself)."""
    job = _jobs.pop(_key(run), None)
    if job is None:
        return
    rc = job.proc.wait()
    if job.proc.stdin:
        job.proc.stdin.close()
    text = job.log_path.read_text(encoding="utf-8", errors="replace") if job.log_path.is_file() else ""
    if rc != 0:
        tail = " | ".join(text.strip().splitlines()[-3:])
        log.warning("surrogate: the background process exited with status %d (%s); training it here", rc, tail)
    else:
        log.info("surrogate: trained in the background process")
    job.log_path.unlink(missing_ok=True)


def stop_all() -> None:
    """Kill every background job still running (the chain failed or was interrupted)."""
    while _jobs:
        _, job = _jobs.popitem()
        if job.proc.poll() is None:
            job.proc.kill()
        job.proc.wait()
        if job.proc.stdin:
            job.proc.stdin.close()
        job.log_path.unlink(missing_ok=True)


def _exit_when_parent_goes() -> None:
    """The parent holds the other end of stdin: EOF means it ended (or was killed)."""
    sys.stdin.buffer.read()
    os._exit(3)


def main(argv: list[str]) -> int:
    """Child entry point: ``python -m neurodeploy.stages.background RUN_DIR``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    from .train import train_surrogate

    train_surrogate(Run(argv[0]), progress=False, background=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
