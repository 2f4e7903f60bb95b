"""Op counting on a recurrent graph (the NIR paper's Braille RSNN): the recurrent synapse's
synaptic operations are its source neuron's spikes times their real fan-out, as for any synapse
(totals over T: the one-step delay of the recurrent edge does not change them)."""
from pathlib import Path

import numpy as np
import torch

from neurodeploy.ir.importer import import_nir
from neurodeploy.targets import get_target

FILE = Path(__file__).resolve().parents[1] / "data" / "external" / "braille_noDelay_bias_zero.nir"


def test_recurrent_synops_are_spikes_times_fanout_on_the_torch_target():
    net, graph, meta, _ = import_nir(FILE, dt=1e-4, timesteps=40, encoding="events", convention="snntorch",
                                     reset="zero")
    x = torch.bernoulli(torch.full((12, 40, 12), 0.1), generator=torch.Generator().manual_seed(0))
    target = get_target("torch")
    out = target.run(target.compile(graph, meta), x)
    net.record = True
    with torch.no_grad():
        net(x)
    spikes = net.spike_maps["lif1.lif"].reshape(len(x), -1).numpy()  # [N, 38] per neuron over T
    w = np.asarray(graph.nodes["lif1.w_rec"].weight)  # [out, in]
    fanout = (w != 0).sum(0)
    assert spikes.sum() > 0
    np.testing.assert_array_equal(out.synops["lif1.w_rec"], spikes @ fanout)
    np.testing.assert_array_equal(out.layer_spikes["lif1.lif"], spikes.sum(1))
