"""The shipped recipes and hardware profiles are package data: a non-editable install has them.

The wheel is built from this checkout without network or build isolation (setuptools is in the
venv) and its file list is checked; then the wheel is unpacked into a folder outside the
repository and the default recipe and every profile are loaded from there by a fresh interpreter,
so nothing can be found through the repository's ``models/`` or ``targets/`` links.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from neurodeploy.recipe import MODELS_DIR, TARGETS_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src")  # built from a copy: the build leaves nothing in the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "neurodeploy", src / "neurodeploy", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        str(src), "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("neurodeploy-*.whl")
    return whl


def test_wheel_lists_every_recipe_and_profile(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = sorted(p.name for p in MODELS_DIR.glob("*.toml"))
    profiles = sorted(p.name for p in TARGETS_DIR.glob("*.toml"))
    assert "digits.toml" in recipes and {"loihi2.toml", "speck2f.toml", "cmos45nm.toml"} <= set(profiles)
    missing = [f"neurodeploy/recipes/{n}" for n in recipes if f"neurodeploy/recipes/{n}" not in names]
    missing += [f"neurodeploy/profiles/{n}" for n in profiles if f"neurodeploy/profiles/{n}" not in names]
    assert not missing, f"not in the wheel: {missing}"


def test_installed_package_loads_default_recipe_and_profiles(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import neurodeploy.recipe as r, pathlib, sys\n"
        "assert pathlib.Path(r.__file__).is_relative_to(sys.argv[1]), r.__file__\n"
        "rec = r.load_recipe('digits')\n"
        "names = [r.load_profile(p).name for p in ('loihi2', 'speck2f', 'cmos45nm')]\n"
        "print(rec.name, *names)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    # -I would drop PYTHONPATH; -s and a neutral cwd keep the checkout off sys.path
    r = subprocess.run([sys.executable, "-s", "-c", code, str(site)], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] == "digits"
