"""The ensemble's chunks in several processes: the same images and verdicts as in one; no child left."""
from __future__ import annotations

import copy
import multiprocessing as mp
import os
from concurrent.futures.process import BrokenProcessPool

import pytest
import torch

from neurodeploy.attacks.ensemble import Settings, parse_members, run_ensemble
from neurodeploy.attacks.parallel import map_chunks

pytestmark = pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")

MEMBERS = ["apgd-ce@train", "apgd-dlr@tri2", "apgd-ce@bptr", "pgd@adaptive", "square"]


def _run(model, x, y, workers: int):
    s = Settings(16 / 255, steps=6, restarts=2, query_budget=40, batch_size=24, workers=workers)
    return run_ensemble(model, x, y, parse_members(MEMBERS), s)


@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_two_workers_give_what_one_gives(trained_snn, digits_data, encoding):
    """Lanes, PGD with restarts and Square, chunked (batch 24 rows, Square 96 samples): every break, its
    member and every worst image equal with 1 and 2 processes; a rate coding's draws too (EOT)."""
    model = copy.deepcopy(trained_snn)
    model.encoding = encoding
    x, y = digits_data.x_test[:60].float(), digits_data.y_test[:60].long()
    one, two = _run(model, x, y, 1), _run(model, x, y, 2)
    assert one.broken_by == two.broken_by
    assert torch.equal(one.broken, two.broken) and torch.equal(one.x_worst, two.x_worst)
    assert one.breaks() == two.breaks()
    assert 0 < int(one.broken.sum()) < len(y)  # something to compare: broken and unbroken samples
    assert mp.active_children() == []


def _die(i: int) -> int:
    if i == 1:
        os._exit(3)
    return i


def test_a_dying_child_raises_instead_of_hanging():
    with pytest.raises(BrokenProcessPool):
        map_chunks(_die, 4, workers=2)
    assert mp.active_children() == []
    assert map_chunks(_die, 1, workers=2) == [0]  # one chunk: in this process


def test_results_come_back_in_chunk_order():
    assert map_chunks(lambda i: i * i, 7, workers=2) == [i * i for i in range(7)]
