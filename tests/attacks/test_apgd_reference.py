"""Our APGD and ensemble against an independent implementation: torchattacks 3.5.1 APGD (Croce & Hein
2020), a test-only reference (requirements/bench.txt; the package never imports it).

On the session's trained digits SNN (deterministic: seeded training) and the same images, through the
same gradient (torchattacks calls the model's own backward, the training surrogate):

- the ensemble of APGD-CE and APGD-DLR through the training surrogate (with the PGD-7 protocol first)
  is at least as strong as each reference attack: robust accuracy ≤ torchattacks' APGD-CE and ≤ its
  APGD-DLR, and ≤ their per-sample union;
- our APGD-CE (-DLR) alone is within a few samples of 48 of torchattacks' APGD-CE (-DLR) with the
  same budget (the two draw different random starts, so exact equality is not expected). Measured on
  this model over seeds 0-3 (ε = 16/255, 20 steps): CE ours 24-25 breaks, theirs 24-26; DLR ours
  21-24, theirs 23-24. Our DLR alone is up to 3 samples weaker than theirs, hence its tolerance of 3;
  the ensemble test above is the strength claim.
"""
from __future__ import annotations

import pytest
import torch

from neurodeploy.attacks.apgd import APGD
from neurodeploy.attacks.ensemble import Settings, parse_members, run_ensemble
from neurodeploy.attacks.estimators import SourceEstimator

torchattacks = pytest.importorskip("torchattacks")

EPS, STEPS, N = 16 / 255, 20, 48
TOLERANCE = {"ce": 2, "dlr": 3}  # samples of N (module docstring: the measured spread)


@pytest.fixture(scope="module")
def images(trained_snn, digits_data):
    x, y = digits_data.x_test[:N].float(), digits_data.y_test[:N].long()
    return trained_snn.eval(), x, y


def _reference(model, x, y, loss: str) -> torch.Tensor:
    atk = torchattacks.APGD(model, norm="Linf", eps=EPS, steps=STEPS, n_restarts=1, loss=loss, seed=0)
    adv = atk(x, y)
    with torch.no_grad():
        return model(adv).argmax(1) != y


def test_ensemble_is_at_least_as_strong_as_torchattacks_apgd(images):
    model, x, y = images
    ref = {loss: _reference(model, x, y, loss) for loss in ("ce", "dlr")}
    res = run_ensemble(model, x, y, parse_members(["apgd-ce@train", "apgd-dlr@train"]),
                       Settings(EPS, steps=STEPS))
    ours = res.robust_accuracy
    acc = {loss: 1 - float(b.float().mean()) for loss, b in ref.items()}
    union = 1 - float((ref["ce"] | ref["dlr"]).float().mean())
    assert 0.0 < ours < 1.0  # the attack breaks some samples and not all: the comparison means something
    assert ours <= acc["ce"] and ours <= acc["dlr"], (ours, acc)
    assert ours <= union, (ours, union, int((ref["ce"] | ref["dlr"]).sum()), int(res.broken.sum()))


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_our_apgd_alone_is_within_tolerance_of_torchattacks(images, loss):
    model, x, y = images
    theirs = _reference(model, x, y, loss)
    adv = APGD(EPS, STEPS, loss, seed=0).generate(SourceEstimator(model), x, y)
    with torch.no_grad():
        ours = model(adv).argmax(1) != y
    assert int(theirs.sum()) > 0
    assert abs(int(ours.sum()) - int(theirs.sum())) <= TOLERANCE[loss], (int(ours.sum()), int(theirs.sum()))
