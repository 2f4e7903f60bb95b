"""HIRE-SNN's attack protocol as the paper recipes set it: PGD with the random start of the
authors' ``validate_pgd`` (x + U(−ε, ε), clamped to [0, 1], then K steps of α·sign(∇) projected
back into the ε-ball), ε = 8/255, α = 0.01, K = 7; paper 2's ε = 6/255."""
from __future__ import annotations

import torch

from neurodeploy.attacks.estimators import SourceEstimator
from neurodeploy.attacks.pgd import PGD
from neurodeploy.recipe import ModelConfig, load_recipe
from neurodeploy.snn import create_model


def test_paper_recipes_attack_with_the_authors_pgd():
    for name in ("hire_vgg5_cifar10", "hire_vgg11_cifar100", "hire_resnet12_cifar10", "bptt_vgg5_cifar10"):
        a = load_recipe(name).attack
        assert a.random_start and (a.steps, a.step_size) == (7, 0.01) and abs(a.epsilon - 8 / 255) < 1e-12


def test_random_start_lies_in_the_ball_and_the_pixel_range():
    torch.manual_seed(0)
    net = create_model("digits_mlp", (1, 8, 8), 10, ModelConfig(), timesteps=2)
    for _, n in net.neurons():
        n.threshold.data.fill_(0.2)
    x = torch.rand(16, 1, 8, 8)
    x[:, :, 0] = 0.0  # pixels at the range's ends: the start is clamped there
    x[:, :, 1] = 1.0
    y = torch.randint(0, 10, (16,))
    est = SourceEstimator(net, 10)
    eps = 8 / 255
    path = PGD(eps, 0.01, 1, random_start=True, seed=3).generate_path(est, x, y, [0, 1])
    start, step = path[0], path[1]
    assert (start - x).abs().max() <= eps + 1e-7 and start.min() >= 0 and start.max() <= 1
    inner = (x > eps) & (x < 1 - eps)
    assert (start != x)[inner].float().mean() > 0.99  # a random start, not x itself
    assert (start[:, :, 0] >= 0).all() and (start[:, :, 1] <= 1).all()
    assert (step - x).abs().max() <= eps + 1e-7
    same = PGD(eps, 0.01, 1, random_start=True, seed=3).generate_path(est, x, y, [0])[0]
    assert torch.equal(same, start)  # seeded
    assert torch.equal(PGD(eps, 0.01, 1, random_start=False).generate_path(est, x, y, [0])[0], x)
