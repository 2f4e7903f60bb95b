import pytest
import torch

from neurodeploy.train.convert import init_thresholds


def test_thresholds_are_percentile_of_input_current(trained_pair, digits_data):
    import copy

    ann, snn = trained_pair
    snn = copy.deepcopy(snn)
    x = digits_data.x_train[:128]
    th = init_thresholds(snn, x, 99.7, 0.8, rule="pooled")
    # the first layer's current is conv1(x), identical at every step with direct coding
    cur = snn.layers["conv1"](x).detach().flatten()
    expect = float(torch.quantile(cur, 0.997)) * 0.8
    assert abs(th["sn1"] - expect) < 1e-4 * max(1.0, expect)
    assert set(th) == {"sn1", "sn2"} and all(v > 0 for v in th.values())
    # the authors' rule (default): the nearest-rank percentile of one step's current (all steps equal here)
    k = 1 + round(0.01 * 99.7 * (cur.numel() - 1))
    assert init_thresholds(copy.deepcopy(trained_pair[1]), x, 99.7, 0.8)["sn1"] == pytest.approx(
        float(cur.kthvalue(k).values) * 0.8, rel=1e-6)
