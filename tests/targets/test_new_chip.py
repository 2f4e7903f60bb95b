"""A new chip is one target module plus one profile: the profile's ``[targets]`` table registers
the target (lazily), and nothing in the package is edited."""
from __future__ import annotations

import sys
import textwrap

import pytest

from neurodeploy.errors import ProfileError
from neurodeploy.targets import base
from neurodeploy.targets import get_target, list_targets


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setattr(base.TARGETS, "_entries", dict(base.TARGETS._entries))
    return base.TARGETS


def test_a_chip_is_a_module_and_a_profile(tmp_path, monkeypatch, fresh_registry):
    (tmp_path / "toychip_target.py").write_text(textwrap.dedent('''
        from neurodeploy.targets import Deployment, Outputs, Target, register_target

        @register_target
        class ToyChip(Target):
            name = "toychip"
            profile_name = ""

            def compile(self, graph, meta, profile=None, options=None):
                return Deployment(self.name, graph, meta, None, options=self.resolve_options(options, None))

            def run(self, deployment, x, batch_size=256, progress=False):
                raise AssertionError("not run here")
    '''))
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "toychip.toml").write_text('name = "toychip"\n[targets]\ntoychip = "toychip_target:ToyChip"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "toychip" not in list_targets()
    assert base.declare_profile_targets(profiles) == ["toychip"]
    assert "toychip" in list_targets() and "toychip_target" not in sys.modules  # listed, not imported
    assert type(get_target("toychip")).__name__ == "ToyChip"
    assert base.target_class("toychip").Options is base.TargetOptions


def test_shipped_chips_are_declared_by_their_profiles():
    from neurodeploy.recipe import load_profile

    assert set(load_profile("loihi2").targets) == {"loihi-emu", "lava"}
    assert set(load_profile("speck2f").targets) == {"speck"}


def test_a_malformed_targets_entry_is_one_line(tmp_path):
    from neurodeploy.recipe import load_profile

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[targets]\nchip = "no colon here"\n')
    with pytest.raises(ProfileError, match=r"bad.toml: targets.chip = 'no colon here'; give the target class"):
        load_profile(bad)
