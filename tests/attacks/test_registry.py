"""Every registered attack: the ε-ball, [0, 1], and the capability check against both estimators."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from neurodeploy.attacks import ATTACKS, LossGradientsMixin, SourceEstimator, TargetEstimator, get_attack
from neurodeploy.errors import AttackError


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_registered_attack_contract(name):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 4)).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, 6, 6, generator=g)
    x[:3] = 1.0
    y = torch.randint(0, 4, (12,), generator=g)
    attack = get_attack(name, epsilon=0.1)
    x_adv = attack.generate(SourceEstimator(model), x, y, batch_size=5)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not torch.equal(x_adv, x) or name == "random"  # random sampling may keep the clean point
    target = TargetEstimator(lambda z: model(z).detach().numpy(), 4)
    if LossGradientsMixin in attack.needs:
        with pytest.raises(AttackError):
            attack.generate(target, x, y)
    else:
        x_t = attack.generate(target, x, y)
        assert (x_t - x).abs().max() <= 0.1 + 1e-6


def test_unknown_attack():
    with pytest.raises(AttackError, match="unknown attack 'cw'; available: apgd, fgsm, gaussian, pgd, random, square"):
        get_attack("cw")


def test_every_file_of_the_attacks_package_is_imported_so_a_new_file_registers_itself():
    import pkgutil
    import sys

    import neurodeploy.attacks as attacks

    files = [m.name for m in pkgutil.iter_modules(attacks.__path__)]
    assert {"fgsm", "pgd", "square", "gaussian", "random_search"} <= set(files)
    assert all(f"neurodeploy.attacks.{f}" in sys.modules for f in files)
    for name in attacks.ATTACKS.names():  # each attack is registered by the file that defines it
        assert attacks.ATTACKS.get(name).__module__.startswith("neurodeploy.attacks.")
