"""The persistent Lava worker, seen from the toolkit's process: one per process, reused by every
``lava`` run (every chunk, every deployment), shut down at exit.

:class:`LavaWorker` starts :mod:`.runner` under the worker environment's Python in its own session
and process group (as :func:`.child.run_in_group` does), with stdin a pipe: the jobs go down it as
JSON lines, and its end of file — the parent closing it or dying — makes the worker remove its
session folder and SIGKILL its whole group (:mod:`.worker`). A job is supervised like a one-shot
child: its ``result.json`` is awaited under ``timeout_s``, a failure marker in the log, the worker's
exit, or a heartbeat that stops for ``stall_s`` kills the whole group (shared memory unlinked,
:func:`.child.kill_group`) and raises :class:`SimulationError`; the next job starts a new worker.
:func:`shutdown` (registered with ``atexit``) sends ``quit``, waits for the worker to stop its
Lava runtime, then kills what is left of the group.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .child import WATCH_ENV, _error, _tail, group_members, kill_group

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("runner.py")  # run by path under the worker's Python (runner.py docstring)
FAIL_MARKERS = ("Exception(s) occurred", "neurodeploy lava runner failed")


class LavaWorker:
    """One running worker process (module docstring)."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.session = Path(tempfile.mkdtemp(prefix="lava-worker-"))
        self.log_path = self.session / "lava.log"
        self.t_start = time.time()
        env = {**env, WATCH_ENV: "1", "MPLCONFIGDIR": env.get("MPLCONFIGDIR", str(self.session / "mpl"))}
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen([python, str(RUNNER), str(self.session)], stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                         start_new_session=True, env=env)
        self.pgid = self.proc.pid
        self.owner = os.getpid()  # a forked copy of this process must not stop the parent's worker
        self.jobs = 0
        self.current_key: str | None = None  # the network the worker keeps built (target.py sets it)
        self.start_reported = False  # its start-up time went into a run's timing (target.py)
        log.debug("Lava worker started: pid/pgid %d, session %s", self.pgid, self.session)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ready_s(self) -> float | None:
        """Seconds from start to Lava imported (None while importing)."""
        try:
            return float(json.loads((self.session / "ready.json").read_text())["import_s"])
        except (OSError, ValueError, KeyError):
            return None

    def submit(self, job_dir: Path, timeout_s: float, stall_s: float) -> dict:
        """Run the job in ``job_dir`` (job.json, job.npz, input.npy written); its result.json."""
        t0 = time.time()
        try:
            self.proc.stdin.write((json.dumps({"cmd": "run", "job": str(job_dir)}) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: found below through its exit
        self.jobs += 1
        done = job_dir / "result.json"
        pos = self.log_path.stat().st_size if self.log_path.exists() else 0
        hb = self.session / "heartbeat"
        while not done.exists():
            rc = self.proc.poll()
            if rc is not None and not done.exists():
                self._fail(f"exited with code {rc} during a job", "failed")
            if time.time() - t0 > timeout_s:
                self._fail(f"exceeded timeout_s={timeout_s:g} s and was killed", "")
            try:
                mtime = hb.stat().st_mtime
            except OSError:
                mtime = 0.0
            if stall_s > 0 and mtime >= t0 and time.time() - mtime > stall_s:  # building: only the timeout
                step = hb.read_text(errors="replace").strip() if hb.exists() else "?"
                self._fail(f"failed: no progress for {time.time() - mtime:.0f} s after step {step} "
                           f"(stall_s={stall_s:g})", "")
            pos, hit = self._scan_log(pos)
            if hit:
                self._fail(f"failed: {hit!r}", "")
            time.sleep(0.02 if time.time() - t0 < 2 else 0.1)
        return json.loads(done.read_text())

    def _scan_log(self, pos: int) -> tuple[int, str | None]:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, pos - 200))
                chunk = f.read().decode(errors="replace")
                end = f.tell()
        except OSError:
            return pos, None
        return end, next((m for m in FAIL_MARKERS if m in chunk), None)

    def _fail(self, what: str, kind: str) -> None:
        """Kill the worker's group and raise the SimulationError saying why."""
        tail = _tail(self.log_path)
        left = self.close(force=True)
        head = "Lava simulation " + (what if kind != "failed" else f"failed (worker {what})")
        raise _error(f"{head} (a worker died or raised; process group {self.pgid} killed"
                     f"{'; still alive: ' + str(left) if left else ', no process left'}). Log {self.log_path}:\n"
                     f"{tail}", self.pgid)

    def close(self, force: bool = False, wait_s: float = 10.0) -> list[int]:
        """Stop the worker (``quit``, then SIGKILL to its whole group); pids still alive after."""
        if not force and self.alive():
            try:
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=wait_s)
            except (OSError, subprocess.TimeoutExpired):
                pass
        left = kill_group(self.pgid)  # Lava processes that outlived it; their shared memory unlinked
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        keep = os.environ.get("NEURODEPLOY_KEEP_LAVA_LOG")
        if not keep:
            shutil.rmtree(self.session, ignore_errors=True)
        if left:
            log.warning("Lava worker: processes %s of group %d survived SIGKILL", left, self.pgid)
        return left


_LOCK = threading.RLock()
_WORKERS: dict[str, LavaWorker] = {}


def get_worker(python: str, env: dict[str, str]) -> tuple[LavaWorker, bool]:
    """The worker for interpreter ``python`` (started if there is none or it died); (worker, started)."""
    with _LOCK:
        w = _WORKERS.get(python)
        if w is not None and w.owner != os.getpid():  # inherited through a fork: start our own
            _WORKERS.pop(python)
            w = None
        if w is not None and w.alive():
            return w, False
        if w is not None:
            w.close(force=True)
        w = _WORKERS[python] = LavaWorker(python, env)
        return w, True


def forget(worker: LavaWorker) -> None:
    """Drop a worker that failed (it is already killed)."""
    with _LOCK:
        for k, v in list(_WORKERS.items()):
            if v is worker:
                del _WORKERS[k]


def shutdown() -> list[int]:
    """Stop every worker of this process; returns pids that survived (none expected)."""
    left: list[int] = []
    with _LOCK:
        while _WORKERS:
            _, w = _WORKERS.popitem()
            if w.owner == os.getpid():
                left += w.close()
    return left


def worker_pgids() -> list[int]:
    """Process groups of the running workers (tests check they are gone after :func:`shutdown`)."""
    with _LOCK:
        return [w.pgid for w in _WORKERS.values() if group_members(w.pgid)]


atexit.register(shutdown)
