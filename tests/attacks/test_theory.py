"""Paper 2's quantities measured: ρ_adv/ρ_rand and ‖∇ₓ f_y‖₀ per sample, weight-gradient density, and
the input-gradient sparsity seen inside composite (SEW) blocks."""
from __future__ import annotations

import torch
from torch import nn

from neurodeploy.attacks.theory import vulnerability, weight_gradient_density


def _linear_with_dead_inputs() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    with torch.no_grad():
        m[1].weight[:, :5] = 0.0  # inputs 0..4 reach no class: their gradient is exactly zero
    return m.eval()


def test_vulnerability_counts_the_gradient_support_and_adversarial_beats_random():
    m = _linear_with_dead_inputs()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(30, 1, 3, 4, generator=g) * 0.8 + 0.1
    y = m(x).argmax(1).detach()
    v = vulnerability(m, x, y, 0.05, steps=10, draws=10)
    assert v["per_sample"]["gradient_l0"] == [7] * 30  # 12 inputs, 5 dead
    assert abs(v["gradient_density_mean"] - 7 / 12) < 1e-9
    rho_adv, rho_rand = torch.tensor(v["per_sample"]["rho_adv"]), torch.tensor(v["per_sample"]["rho_rand"])
    assert (rho_adv >= rho_rand - 1e-6).all() and v["ratio_median"] > 1  # the attack hurts more than noise


def test_weight_gradient_density_is_the_input_support_for_a_linear_layer():
    # dL/dW = (p − onehot(y)) xᵀ: zero exactly in the columns where x is zero
    m = nn.Sequential(nn.Flatten(), nn.Linear(6, 3)).eval()
    x = torch.rand(8, 1, 2, 3) + 0.1
    x[:, 0, 0, :2] = 0.0  # two of six inputs zero in every sample
    y = torch.randint(0, 3, (8,))
    (row,) = weight_gradient_density(m, x, y)
    assert row["parameter"] == "1.weight" and row["entries"] == 18
    assert abs(row["nonzero_fraction"] - 4 / 6) < 1e-9


def test_sparsity_is_measured_inside_sew_blocks():
    from neurodeploy.attacks.sparsity import gradient_sparsity
    from neurodeploy.data import load_dataset
    from neurodeploy.recipe import load_recipe
    from neurodeploy.snn import create_snn

    r = load_recipe("models/digits_sew_avg.toml")
    d = load_dataset(r.data, 0)
    m = create_snn(r, d.input_shape, d.num_classes).eval()
    rows = {row["layer"]: row for row in gradient_sparsity(m, d.x_test[:8], d.y_test[:8])}
    assert {"block1", "block1.conv1", "block1.sn1", "block1.sn2", "block2.down_sn"} <= set(rows)
    assert rows["block1.sn1"]["depth"] == 1 and rows["block1"]["depth"] == 0
    assert rows["block1.sn1"]["kind"] == "SpikingNeuron"


def test_theory_section_without_a_correctly_classified_sample_says_so():
    # every label wrong: ρ_adv/ρ_rand are defined on correct samples only, so nothing is measured
    from neurodeploy.attacks import AttackInputs, robustness_report
    from neurodeploy.recipe import AttackConfig

    m = _linear_with_dead_inputs()
    x = torch.rand(6, 1, 3, 4, generator=torch.Generator().manual_seed(2))
    y = (m(x).argmax(1).detach() + 1) % 4
    rep = robustness_report(AttackInputs(m, x, y), AttackConfig(sections=["clean", "theory"], sweep_epsilons=[],
                                                                sweep_steps=[], query_budget=0))
    assert rep["theory"]["samples"] == 0 and "none of the 6 samples" in rep["theory"]["note"]
