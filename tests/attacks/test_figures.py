"""The robustness figures: one ε plot with the source and every target, the K plot, the sparsity plot."""
from __future__ import annotations

import pytest

from neurodeploy.report.figures_robustness import (epsilon_label, plot_accuracy_vs_epsilon, plot_gradient_sparsity,
                                                   write_robustness_figures)

ROB = {
    "source": {},
    "sweeps": {
        "epsilon": [{"epsilon": e, "accuracy": a, "steps": 7, "step_size": 0.01, "others": {"torch": a, "speck": b}}
                    for e, a, b in ((0.0, 0.9, 0.85), (8 / 255, 0.6, 0.7), (1.0, 0.0, 0.1))],
        "steps": [{"steps": k, "accuracy": a, "epsilon": 8 / 255, "step_size": 0.01} for k, a in ((0, 0.9), (7, 0.6),
                                                                                                 (40, 0.55))],
    },
    "sparsity": [{"layer": "conv1", "kind": "Conv2d", "zero_fraction": 0.01, "l2_norm": 0.4},
                 {"layer": "sn1", "kind": "SpikingNeuron", "zero_fraction": 0.3, "l2_norm": 0.04}],
}


def test_epsilon_plot_has_source_and_each_target():
    fig = plot_accuracy_vs_epsilon(ROB)
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert labels == ["source (white-box)", "torch (transfer)", "speck (transfer)"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "8/255", "1 (unbounded)"]


def test_sparsity_plot_takes_an_ax():
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    assert plot_gradient_sparsity(ROB, ax=ax) is fig
    assert [p.get_height() for p in ax.patches] == [0.01, 0.3]
    plt.close(fig)


def test_write_figures(tmp_path):
    paths = write_robustness_figures(ROB, tmp_path)
    assert [p.name for p in paths] == ["robustness_epsilon.png", "robustness_steps.png", "gradient_sparsity.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert epsilon_label(4 / 255) == "4/255" and epsilon_label(0.05) == "1/20"
