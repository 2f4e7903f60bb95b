"""Run a command in its own session and process group, under a timeout, and leave nothing behind.

Lava starts ~14 worker processes; a failure inside one surfaces only as "Exception(s) occurred"
and ``stop()`` can then hang. So the simulation runs in a child started with
``start_new_session=True`` (its own session, process group id = its pid). On timeout, failure or
success the whole group gets SIGKILL, and we wait until no live (non-zombie) process of the group
remains.

If the parent itself dies (SIGKILL, SIGTERM, a crash), nothing above runs. So the child's stdin is
a pipe whose only writer is the parent: the child calls :func:`watch_parent` first thing, and a
thread there waits for end-of-file on stdin — which the kernel delivers when the parent is gone —
then removes the job folder and SIGKILLs the child's whole process group (Lava's workers included).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ....errors import SimulationError

log = logging.getLogger(__name__)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid`` (read from /proc)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        state, pg = rest[0], int(rest[2])
        if pg == pgid and state not in ("Z", "X"):
            pids.append(int(d.name))
    return pids


def _shared_memory_of(pids: list[int]) -> set[str]:
    """/dev/shm segments (Lava's shared-memory channels) mapped or open in the processes ``pids``."""
    found: set[str] = set()
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if "/dev/shm/" in line:
                    found.add(line[line.index("/dev/shm/"):].split(" (deleted)")[0].strip())
        except OSError:
            pass
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("/dev/shm/"):
                    found.add(target.split(" (deleted)")[0])
        except OSError:
            pass
    return found


def kill_group(pgid: int, wait_s: float = 10.0) -> list[int]:
    """SIGKILL every process of group ``pgid``; returns the pids still alive after ``wait_s``.

    Shared-memory segments the killed processes had mapped are unlinked (a killed Lava runtime
    cannot clean them up itself); only segments of this group are touched.
    """
    deadline = time.time() + wait_s
    members = group_members(pgid)
    shm = _shared_memory_of(members) if members else set()
    try:
        return _kill_until_gone(pgid, deadline)
    finally:
        for path in shm:
            try:
                os.unlink(path)
            except OSError:
                pass
        if shm:
            log.debug("unlinked %d shared-memory segments of process group %d", len(shm), pgid)


def _kill_until_gone(pgid: int, deadline: float) -> list[int]:
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        alive = group_members(pgid)
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.05)


def _tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    keep = [ln for ln in lines if ln.strip()][-n:]
    return "\n".join(keep)


def _error(msg: str, pgid: int) -> SimulationError:
    e = SimulationError(msg)
    e.pgid = pgid  # type: ignore[attr-defined]
    return e


class _Failed(Exception):
    pass


def _wait(proc: subprocess.Popen, timeout_s: float, log_path: Path, markers: tuple[str, ...],
          heartbeat: Path | None, stall_s: float) -> int:
    """Wait for ``proc``; _Failed as soon as a failure marker shows in its log or its heartbeat file
    stops changing for ``stall_s``; TimeoutExpired after ``timeout_s``."""
    deadline = time.time() + timeout_s
    pos = 0
    while True:
        try:
            return proc.wait(timeout=min(0.5, max(0.01, deadline - time.time())))
        except subprocess.TimeoutExpired:
            if time.time() >= deadline:
                raise
        if heartbeat is not None and stall_s > 0:
            try:
                age = time.time() - heartbeat.stat().st_mtime
            except OSError:
                age = 0.0  # not simulating yet (building): only the overall timeout applies
            if age > stall_s:
                step = heartbeat.read_text(errors="replace").strip() if heartbeat.exists() else "?"
                raise _Failed(f"no progress for {age:.0f} s after step {step} (stall_s={stall_s:g})")
        if markers:
            try:
                with open(log_path, "rb") as f:
                    f.seek(max(0, pos - 200))
                    chunk = f.read().decode(errors="replace")
                    pos = f.tell()
            except OSError:
                continue
            hit = next((m for m in markers if m in chunk), None)
            if hit:
                raise _Failed(repr(hit))


WATCH_ENV = "NEURODEPLOY_WATCH_PARENT"  # set for children started by run_in_group: stdin is the parent pipe


def watch_parent(cleanup: Path | None = None) -> bool:
    """In a child started by :func:`run_in_group`: die with the parent.

    A daemon thread blocks reading stdin (a pipe only the parent writes to, and never does); EOF
    means the parent is gone. Then ``cleanup`` (the job folder) is removed and the whole process
    group — this process and every worker it forked — is SIGKILLed. Returns whether the watch
    started (only when the parent asked for it through the environment).
    """
    if os.environ.get(WATCH_ENV) != "1":
        return False
    fd = sys.stdin.fileno()

    def wait_for_eof() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=wait_for_eof, name="watch-parent", daemon=True).start()
    return True


def run_in_group(cmd: list[str], timeout_s: float, log_path: Path, env: dict[str, str] | None = None,
                 what: str = "Lava simulation", fail_markers: tuple[str, ...] = ("Exception(s) occurred",),
                 heartbeat: Path | None = None, stall_s: float = 0.0) -> tuple[int, float]:
    """Run ``cmd`` in a new session; SimulationError on timeout, a failure marker in its output, or a
    non-zero exit. Returns (pgid, seconds)."""
    t0 = time.time()
    env = {**(os.environ if env is None else env), WATCH_ENV: "1"}
    with open(log_path, "wb") as logf:
        # stdin: a pipe the parent never writes to; its EOF tells the child the parent died (watch_parent)
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                                start_new_session=True, env=env)
    pgid = proc.pid
    try:
        return _supervise(proc, pgid, t0, timeout_s, log_path, what, fail_markers, heartbeat, stall_s)
    finally:
        proc.stdin.close()


def _supervise(proc: subprocess.Popen, pgid: int, t0: float, timeout_s: float, log_path: Path, what: str,
               fail_markers: tuple[str, ...], heartbeat: Path | None, stall_s: float) -> tuple[int, float]:
    log.debug("%s started: pid/pgid %d, timeout %.0f s", what, pgid, timeout_s)
    try:
        try:
            rc = _wait(proc, timeout_s, log_path, fail_markers, heartbeat, stall_s)
        except _Failed as f:
            left = kill_group(pgid)
            proc.wait()
            raise _error(f"{what} failed: {f} (a worker died or raised; process group {pgid} killed"
                         f"{'; still alive: ' + str(left) if left else ', no process left'}). Log {log_path}:\n"
                         f"{_tail(log_path)}", pgid) from None
        except subprocess.TimeoutExpired:
            left = kill_group(pgid)
            proc.wait()
            raise _error(f"{what} exceeded timeout_s={timeout_s:g} s and was killed (process group {pgid}"
                         f"{'; still alive: ' + str(left) if left else ', no process left'}). Log {log_path}:\n"
                         f"{_tail(log_path)}", pgid) from None
    except BaseException:
        kill_group(pgid)
        proc.wait()
        raise
    left = kill_group(pgid)  # Lava workers that outlived the runner
    if left:
        log.warning("%s: processes %s of group %d survived SIGKILL", what, left, pgid)
    if rc != 0:
        raise _error(f"{what} failed (exit code {rc}; process group {pgid} killed). Log {log_path}:\n"
                     f"{_tail(log_path)}", pgid)
    return pgid, time.time() - t0
