"""The lanes' backward recurrence in C against its torch loop; the adaptive width's selection."""
from __future__ import annotations

import pytest
import torch

from neurodeploy.attacks import lanes
from neurodeploy.attacks.gradients import adaptive_derivative


@pytest.mark.parametrize("zero", [False, True])
def test_c_recurrence_equals_the_torch_loop_bit_for_bit(zero):
    g = torch.Generator().manual_seed(3)
    T, shape = 7, (5, 3, 4, 4)
    g_out, u = torch.randn(T, *shape, generator=g), 2 * torch.randn(T, *shape, generator=g)
    s = (u > 1.3).float()
    sig = torch.rand(T, *shape, generator=g)
    th, lam = torch.tensor(1.3), torch.tensor(0.9 if zero else 1.0)
    ref, out = torch.empty_like(u), torch.empty_like(u)
    lanes._recurrence(g_out, u, s, sig, ref, th, lam, zero)
    if not lanes._c_recurrence(g_out, u, s, sig, out, th, lam, zero):
        pytest.skip("no C compiler")
    assert torch.equal(out, ref)
    # a threshold per neuron: the torch loop runs (the kernel takes scalars)
    assert not lanes._c_recurrence(g_out, u, s, sig, out, torch.full(shape[1:], 1.3), lam, zero)


def test_adaptive_width_is_the_exact_quantile():
    z = torch.randn(40, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    a = z.abs().reshape(40, -1)
    w = a.kthvalue(36, dim=1).values.clamp(min=0.05).view(-1, 1, 1, 1)
    torch.testing.assert_close(adaptive_derivative(z), torch.clamp(1.0 - z.abs() / w, min=0.0) / w, rtol=0, atol=0)
