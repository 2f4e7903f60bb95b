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

The attack stage uses a second child the same way: :func:`start_target_helper` starts a process that
deploys the run's targets as the stage does (the same ``model.nir``, the same options) and runs the
stage's target jobs (:meth:`~neurodeploy.attacks.sections.AttackContext.on_targets`: transfer
accuracies, the Square attack on each simulation, the targets' points of the ε sweep, their ensemble
entries) while the main process runs the source's white-box attacks. Jobs go down its stdin and
results come back on its stdout as pickled frames, in order; the report is the one built without it
(the jobs are deterministic functions of their arguments, and each target gets its jobs in the
order the stage would have made its calls). End of file on its stdin — the stage done, or the
parent gone — makes it stop its Lava workers (a child running ``lava`` starts its own, shared
memory unlinked on the way out) and exit. A helper that fails is logged with its log's last lines,
and the jobs it did not answer are computed in the main process.
"""
from __future__ import annotations

import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, BinaryIO

from ..attacks.sections import Pending, TargetHelper
from ..run import Run

log = logging.getLogger(__name__)

LOG_NAME = "surrogate.log"
HELPER_LOG_NAME = "attack-targets.log"


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


def _child_env() -> dict[str, str]:
    pkg_root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (pkg_root, os.environ.get("PYTHONPATH")) if p)}


def start_surrogate(run: Run) -> bool:
    """Start training ``run``'s surrogate in a child process when the attack stage will need one
    that is not there yet; returns whether a child was started."""
    from . import resume

    a = run.recipe.attack
    if not enabled() or run.imported or a.blackbox != "seed" or _key(run) in _jobs:
        return False
    if (run.dir / "surrogate.safetensors").is_file() and not resume.stale(run, "surrogate", resume.surrogate_fp(run)):
        return False
    log_path = run.dir / LOG_NAME
    with open(log_path, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-m", "neurodeploy.stages.background", str(run.dir)],
                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=_child_env())
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
    """Stop every background job still running (the chain failed or was interrupted): the surrogate
    is killed; a target helper gets end of file first (it stops its Lava workers), then is killed."""
    while _jobs:
        _, job = _jobs.popitem()
        if isinstance(job, TargetHelperProcess):
            job.close()
            continue
        if job.proc.poll() is None:
            job.proc.kill()
        job.proc.wait()
        if job.proc.stdin:
            job.proc.stdin.close()
        job.log_path.unlink(missing_ok=True)


# --- the attack stage's target helper -----------------------------------------------------------

_HEADER = struct.Struct(">Q")


def _send(out: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _receive(read: Callable[[int], bytes]) -> Any:
    """The next frame, or ``EOFError`` at end of file.

    Frames travel only over the pipes between the run's process and the helper child it started
    (jobs: a function and its tensors; answers: report fragments): never a file, never anything a
    user hands in, so unpickling them reads no user data."""
    head = _read_exact(read, _HEADER.size)
    data = _read_exact(read, _HEADER.unpack(head)[0]) if head is not None else None
    if data is None:
        raise EOFError
    return pickle.loads(data)


class TargetHelperProcess(TargetHelper):
    """The parent's side of a target helper (module docstring): :meth:`submit` sends a job, a thread
    collects the answers, :meth:`close` ends the child."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, names: list[str]) -> None:
        self.proc, self.log_path, self.names = proc, log_path, names
        self._next = 0
        self._results: dict[int, tuple[bool, Any]] = {}
        self._cond = threading.Condition()
        self._eof = False
        self.failed: str | None = None
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        try:
            while True:
                jid, ok, value = _receive(self.proc.stdout.read)
                with self._cond:
                    self._results[jid] = (ok, value)
                    self._cond.notify_all()
        except Exception:  # end of file (the child exited or was stopped) or a frame it could not finish
            pass
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why
            text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.is_file() else ""
            tail = " | ".join(text.strip().splitlines()[-3:])
            log.warning("attack: the target helper %s (%s); its jobs are computed here", why, tail or "no log")

    def submit(self, job: Callable[..., Any], args: tuple, fallback: Callable[[], Any]) -> Pending:
        if self.failed is not None:
            return Pending.of(fallback())
        jid, self._next = self._next, self._next + 1
        try:
            _send(self.proc.stdin, (jid, job, args))
        except (OSError, ValueError, pickle.PicklingError, AttributeError, TypeError) as e:
            self._fail(f"could not take a job ({type(e).__name__}: {e})")
            return Pending.of(fallback())
        return Pending(lambda: self._wait(jid, fallback))

    def _wait(self, jid: int, fallback: Callable[[], Any]) -> Any:
        with self._cond:
            while jid not in self._results and not self._eof:
                self._cond.wait()
            answer = self._results.pop(jid, None)
        if answer is None:
            rc = self.proc.poll()
            self._fail(f"exited with status {rc}" if rc is not None else "stopped answering")
            return fallback()
        ok, value = answer
        if not ok:
            raise value  # the job's own error, as the stage would have raised it
        return value

    def close(self, timeout: float = 60.0) -> None:
        """End of file on its stdin (it stops its Lava workers and exits); killed after ``timeout``."""
        _jobs.pop(getattr(self, "_key", ""), None)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log_path.unlink(missing_ok=True)


def start_target_helper(run: Run, targets: list[str]) -> TargetHelperProcess | None:
    """A target helper for the attack stage of ``run`` on ``targets`` (None when the overlap is off
    or there are no targets). The caller closes it (:meth:`TargetHelperProcess.close`; :func:`stop_all`
    closes any left)."""
    if not enabled() or not targets:
        return None
    log_path = run.dir / HELPER_LOG_NAME
    with open(log_path, "w", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-m", "neurodeploy.stages.background", "--targets", str(run.dir),
                                 ",".join(targets)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                env=_child_env())
    helper = TargetHelperProcess(proc, log_path, list(targets))
    helper._key = _key(run) + "#targets"
    _jobs[helper._key] = helper  # type: ignore[assignment]
    log.info("attack: target jobs (%s) in a helper process, pid %d (log: %s)", ", ".join(targets), proc.pid, log_path)
    return helper


def serve_targets(run_dir: str, names: list[str]) -> int:
    """Child entry point of a target helper: deploy ``names`` as the attack stage does, then answer
    jobs from stdin until end of file."""
    from ..attacks.stage import target_query_fn
    from ..ir import read_nir
    from ..targets import get_target
    from ..util import seed_everything
    from .deploy import deploy

    out = os.fdopen(os.dup(1), "wb")  # the frames' channel; anything else printed goes to the log
    os.dup2(2, 1)
    jobs: queue.Queue = queue.Queue()
    idle = threading.Event()
    idle.set()

    def read(n: int) -> bytes:
        try:
            return os.read(0, n)  # fd 0, not sys.stdin (the Lava worker's reader explains why)
        except OSError:
            return b""

    def reader() -> None:
        try:
            while True:
                jobs.put(_receive(read))
        except EOFError:
            pass
        except BaseException:  # a frame it cannot read: the parent computes every job it has not answered
            log.exception("target helper: a job could not be read")
            _stop_lava()
            os._exit(4)
        jobs.put(None)
        if not idle.wait(2.0):  # mid-job: the parent is gone; stop the Lava workers and leave
            _stop_lava()
            os._exit(3)

    threading.Thread(target=reader, daemon=True).start()
    run = Run(run_dir)
    seed_everything(run.recipe.seed)  # as the attack stage does before it deploys
    graph, meta = read_nir(run.nir_path)
    fns = {}
    for name in names:
        target = get_target(name)
        fns[name] = target_query_fn(target, deploy(run, target, graph, meta))
    log.info("target helper: %s deployed", ", ".join(names))
    try:
        while (item := jobs.get()) is not None:
            idle.clear()
            jid, job, args = item
            try:
                answer = (jid, True, job(fns, *args))
            except Exception as e:  # the job's error goes to the parent, which raises it
                log.exception("target helper: job %d (%s) failed", jid, getattr(job, "__name__", job))
                answer = (jid, False, _picklable(e))
            try:
                _send(out, answer)
            except OSError:
                break
            finally:
                idle.set()
    finally:
        _stop_lava()
    return 0


def _picklable(e: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        from ..errors import AttackError

        return AttackError(f"target helper: {type(e).__name__}: {e}")


def _stop_lava() -> None:
    """Stop this process's Lava workers (their shared memory unlinked), if Lava was used."""
    session = sys.modules.get("neurodeploy.targets.loihi.lava.session")
    if session is not None:
        session.shutdown()


def _exit_when_parent_goes() -> None:
    """The parent holds the other end of stdin: EOF means it ended (or was killed)."""
    sys.stdin.buffer.read()
    os._exit(3)


def main(argv: list[str]) -> int:
    """Child entry point: ``python -m neurodeploy.stages.background RUN_DIR`` (the surrogate) or
    ``... --targets RUN_DIR NAME,NAME`` (a target helper)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["--targets"]:
        return serve_targets(argv[1], argv[2].split(","))
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    from .train import train_surrogate

    train_surrogate(Run(argv[0]), progress=False, background=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
