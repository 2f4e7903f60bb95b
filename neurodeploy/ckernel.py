"""Small C kernels built once with the system C compiler and loaded through ctypes.

A kernel is C source compiled with ``cc -O3 -march=native -ffp-contract=off`` (no fused multiply-add
contraction: every float operation rounds as the C source writes it, as torch's elementwise ops do)
into ``~/.cache/neurodeploy/kernels/NAME_KEY.so``, the key a hash of the source, the machine, its CPU
flags and the compiler, so a changed kernel or another machine builds anew. The build is atomic (a
concurrent build writes the same bytes). Without a compiler, or with ``NEURODEPLOY_NO_C_KERNEL=1``,
:func:`load` returns None and the caller runs its torch code instead.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "neurodeploy" / "kernels"


def load(name: str, src: str, declare: Callable[[ctypes.CDLL], None], what: str) -> ctypes.CDLL | None:
    """The compiled kernel ``name`` (built on first use), its functions typed by ``declare(lib)``;
    None (logged, naming ``what`` runs instead) when it cannot be built or is turned off."""
    if os.environ.get("NEURODEPLOY_NO_C_KERNEL"):
        return None
    cc = os.environ.get("CC", "cc")
    try:
        cpu = Path("/proc/cpuinfo").read_text().split("flags", 1)[-1].split("\n", 1)[0] \
            if Path("/proc/cpuinfo").exists() else ""
        key = hashlib.sha256((src + platform.machine() + cpu + cc + " ".join(FLAGS)).encode()).hexdigest()[:16]
        d = cache_dir()
        so = d / f"{name}_{key}.so"
        if not so.exists():
            d.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=d) as tmp:
                c_file = Path(tmp) / f"{name}.c"
                c_file.write_text(src)
                out = Path(tmp) / f"{name}.so"
                subprocess.run([cc, *FLAGS, str(c_file), "-o", str(out)], check=True, capture_output=True, timeout=120)
                os.replace(out, so)
            log.info("built the C kernel %s", so)
        lib = ctypes.CDLL(str(so))
    except (OSError, subprocess.SubprocessError) as e:
        log.info("no C kernel %s (%s); %s runs", name, str(e).splitlines()[0] if str(e) else e, what)
        return None
    declare(lib)
    return lib


__all__ = ["cache_dir", "load"]
