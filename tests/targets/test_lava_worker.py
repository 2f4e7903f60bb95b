"""The Lava worker environment: Lava runs under its own Python 3.10, the toolkit never imports it.

Without a worker, ``lava`` is unavailable with one line saying how to create it and every other
target works; the files the worker runs are Python 3.10 code importing only the standard library,
numpy, scipy, h5py, Lava and each other (neurodeploy/targets/loihi/lava/runner.py docstring).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import neurodeploy
from neurodeploy.cli import main
from neurodeploy.errors import TargetError
from neurodeploy.targets import get_target
from neurodeploy.targets.loihi.lava import worker_env
from neurodeploy.targets.loihi.lava.target import RUNNER, LavaTarget

PKG = Path(neurodeploy.__file__).parent
LAVA_DIR = PKG / "targets" / "loihi" / "lava"
# what runner.py executes in the worker: itself, the files it imports, and the Lava processes
WORKER_FILES = [LAVA_DIR / "runner.py", LAVA_DIR / "worker.py", LAVA_DIR / "child.py", LAVA_DIR / "graph_builder.py",
                PKG / "errors.py", *sorted((LAVA_DIR / "procs").glob("*.py"))]
WORKER_NEURODEPLOY = {"neurodeploy.errors", "neurodeploy.targets.loihi.lava.child", "neurodeploy.targets.loihi.lava.worker",
                      "neurodeploy.targets.loihi.lava.procs", "neurodeploy.targets.loihi.lava.procs.probes",
                      "neurodeploy.targets.loihi.lava.procs.batched"}
WORKER_THIRD_PARTY = {"numpy", "scipy", "h5py", "lava"}


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved against its package)."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = list(rel.parts[:-1])  # a module's package; for __init__ the package itself
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            names.add(mod)
    return names


def test_without_a_worker_lava_is_unavailable_with_one_line_and_the_rest_works(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(worker_env.ENV_VAR, str(tmp_path / "no-such-python"))
    ok, why = LavaTarget().available()
    assert not ok and "\n" not in why
    assert str(tmp_path / "no-such-python") in why and "make setup-lava" in why
    with pytest.raises(TargetError, match="target 'lava' is not available here: .*make setup-lava"):
        get_target("lava")
    for name in ("torch", "loihi-emu", "onnx", "speck"):
        assert get_target(name).name == name
    assert main(["targets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    lava_line = next(ln for ln in lines if ln.startswith("lava "))
    assert "unavailable: " in lava_line and "make setup-lava" in lava_line
    assert next(ln for ln in lines if ln.startswith("loihi-emu ")).split()[1] == "available"


def test_a_worker_of_the_wrong_python_is_refused_with_the_reason(monkeypatch):
    monkeypatch.setenv(worker_env.ENV_VAR, sys.executable)  # the main environment: Python >= 3.11
    python, why = worker_env.find_worker_python()
    assert python is None
    assert f"is Python {sys.version_info[0]}.{sys.version_info[1]}; Lava 0.10 runs on Python 3.10 only" in why


def test_the_worker_files_are_python310_code_importing_no_main_env_package():
    for path in WORKER_FILES:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))
        for mod in _imports(path):
            top = mod.split(".")[0]
            if top == "neurodeploy":
                assert mod in WORKER_NEURODEPLOY, (path, mod)
            elif top not in sys.stdlib_module_names:
                assert top in WORKER_THIRD_PARTY, (path, mod)


def test_no_module_of_the_main_process_imports_lava():
    worker = {p.resolve() for p in WORKER_FILES}
    importers = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if p.resolve() not in worker
                       and any(m == "lava" or m.startswith("lava.") for m in _imports(p)))
    assert importers == []


@pytest.mark.lava
def test_the_runner_loads_netx_and_its_processes_in_the_worker_without_torch():
    python, _ = worker_env.find_worker_python()
    code = f"""
import runpy, sys, importlib.util
g = runpy.run_path({str(RUNNER)!r}, run_name="check")
g["worker_imports"]()
import lava.lib.dl.netx.hdf5
from neurodeploy.targets.loihi.lava.procs.probes import LayerProbe, SpikeSource
from neurodeploy.targets.loihi.lava.child import watch_parent
from neurodeploy.errors import UnsupportedLayerError
g["sparse_netx_reader"]()
print(importlib.util.find_spec("torch") is None, "torch" in sys.modules, lava.lib.dl.netx.hdf5.Network.__name__)
try:
    lava.lib.dl.netx.hdf5.get_rf_params({{}})
except UnsupportedLayerError as e:
    print("rf:", e)
"""
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, env=worker_env.worker_env())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "True False Network"  # no torch in the worker environment, none imported
    assert lines[1].startswith("rf: netx RF neurons need lava-dl's slayer (torch)")
