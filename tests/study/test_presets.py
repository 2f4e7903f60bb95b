"""Study presets: the digits preset's recipes and claims, recipe variants (the sweeps), shared ANN stages."""
from __future__ import annotations

import pytest

from neurodeploy.errors import RecipeError
from neurodeploy.study import RunResult, evaluate_claims
from neurodeploy.study.claims import rate_claims
from neurodeploy.study.core import _needs_blackbox, _needs_sweeps
from neurodeploy.study.presets import PRESETS, get_preset, parse_variant, variant
from neurodeploy.study.runs import ann_key


def test_digits_preset_covers_digits_and_event_digits():
    p = get_preset("digits")
    names = [r.name for r in p.load()]
    assert names == ["digits_hire", "digits_bptt", "digits_hire_frozen", "digits_sew_avg", "digits_sew_max",
                     "event_digits_hire", "event_digits_bptt", "event_digits_hire_frozen", "event_digits_sew_avg",
                     "event_digits_sew_max"]
    assert len(p.seeds) >= 5 and p.targets == ["loihi-emu", "speck"]
    events = {r.name: r for r in p.load() if r.data.encoding == "events"}
    assert {r.attack.event_budget for r in events.values()} == {16}  # every event recipe attacked in events
    fig8 = {c.key: c for c in p.claims}["event-digitsfig8"]
    assert [k.metric for k in fig8.comparisons] == ["eps=2", "k=1", "k=8"]
    assert [k.b_metric for k in fig8.comparisons] == ["eps=32", "k=16", "k=16"]
    assert _needs_sweeps(p.claims) == {"digits_hire", "event_digits_hire"}
    # black-box attacks only where Table 2 reads them
    assert _needs_blackbox(p.claims, p.load()) == {"digits_hire", "digits_bptt", "event_digits_hire",
                                                   "event_digits_bptt"}


def test_variants_round_trip_and_refuse_malformed_names():
    name = variant("digits_bptt", data__encoding="rate", timesteps=32)
    assert name == "digits_bptt@data.encoding=rate,timesteps=32"
    assert parse_variant(name) == ("digits_bptt", {"data.encoding": "rate", "timesteps": 32})
    assert parse_variant("digits_hire") == ("digits_hire", {})
    for bad in ("digits_hire@timesteps", "digits_hire@=4", "digits_hire@timesteps="):
        with pytest.raises(RecipeError, match="recipe@key=value"):
            parse_variant(bad)


def test_sweep_presets_apply_the_variant_on_top_of_the_budget():
    t = {r.name: r for r in PRESETS["digits-t"].load()}
    assert sorted(r.timesteps for r in t.values()) == [4, 4, 8, 8, 16, 16]
    h4 = t["digits_hire@timesteps=4"]
    assert h4.train.snn.epochs == 5 and h4.attack.max_samples == 200  # the digits preset's budget
    assert h4.attack.sweep_epsilons == t["digits_hire"].attack.sweep_epsilons  # per_recipe by the shipped name
    es = {r.name: r for r in PRESETS["digits-eps-s"].load()}
    assert sorted(r.train.snn.noise_step for r in es.values()) == [0.0, 0.0125, 0.025, 0.05, 0.1]
    assert all(r.train.snn.noise_bound == r.train.snn.noise_step for r in es.values())
    rate = PRESETS["digits-rate"].load()[1]
    assert (rate.data.encoding, rate.timesteps, rate.train.snn.method) == ("rate", 32, "bptt")
    for name, t_rate in (("cifar10-rate", 150), ("cifar100-rate", 200)):  # 25 × the HIRE recipe's T
        hire, r = PRESETS[name].load()
        assert r.timesteps == 25 * hire.timesteps == t_rate and r.data.encoding == "rate"
    # variants that change only SNN fields (T, coding, ε_s) share their recipe's ANN stage; events do not
    base = t["digits_bptt"]
    assert ann_key(h4, 0) == ann_key(base, 0) == ann_key(rate, 0) != ann_key(base, 1)
    ev = get_preset("digits").load()[5]
    assert ann_key(ev, 0) != ann_key(base, 0)


def test_rate_claim_verdicts():
    runs = [RunResult("h", s, 0.9, 0.6 + 0.01 * s, 0.5 + 0.01 * s) for s in range(5)] + \
           [RunResult("r", s, 0.9, 0.4 + 0.012 * s, 0.45 + 0.009 * s) for s in range(5)]
    rows = {r["metric"]: r for r in evaluate_claims(rate_claims("h", "r"), runs)[0]["rows"]}
    assert rows["fgsm"]["verdict"] == "reproduced" and rows["pgd"]["verdict"] == "reproduced"
    assert rows["clean (≈, ±2 pp)"]["verdict"] == "reproduced"
