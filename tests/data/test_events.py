"""Event format, binning, event-digits and the local-folder event datasets (tonic layout)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neurodeploy.data import load_dataset
from neurodeploy.data.datasets import digits_arrays
from neurodeploy.data.events import (CANVAS, DURATION_US, EVENT_DTYPE, event_digits_events, event_digits_frames,
                                     make_events, to_frames)
from neurodeploy.data.neuromorphic import read_nmnist_bin
from neurodeploy.errors import DataError
from neurodeploy.recipe import DataConfig


def test_to_frames_bins_by_time_and_polarity():
    ev = make_events([0, 1, 1, 2], [0, 0, 1, 2], [0, 10, 55, 99], [1, 0, 1, 1])
    f = to_frames(ev, (3, 3, 2), 2)
    assert f.shape == (2, 2, 3, 3) and f.sum() == 4
    assert f[0, 1, 0, 0] == 1 and f[0, 0, 0, 1] == 1 and f[1, 1, 1, 1] == 1 and f[1, 1, 2, 2] == 1


def test_event_digits_tonic_format_and_frames():
    x, _ = digits_arrays()
    imgs = x[:20, 0]
    events = event_digits_events(imgs)
    assert all(e.dtype == EVENT_DTYPE and e.dtype.names == ("x", "y", "t", "p") for e in events)
    e0 = events[0]
    assert len(e0) > 50 and set(np.unique(e0["p"])) == {0, 1}  # ON and OFF events
    assert np.all(np.diff(e0["t"]) >= 0) and e0["t"].max() <= DURATION_US
    assert e0["x"].max() < CANVAS and e0["y"].max() < CANVAS
    frames = event_digits_frames(imgs, 6)
    assert frames.shape == (20, 6, 2, CANVAS, CANVAS)
    for i in range(3):
        np.testing.assert_array_equal(frames[i], to_frames(events[i], (CANVAS, CANVAS, 2), 6, DURATION_US, 0))
    np.testing.assert_array_equal(frames, event_digits_frames(imgs, 6))  # deterministic
    # each saccade direction sees the digit's edges: activity in every third of the recording
    thirds = frames.reshape(20, 3, 2, 2, CANVAS, CANVAS).sum((0, 2, 3, 4, 5))
    assert np.all(thirds > 0)


def test_event_digits_dataset_split_and_shape():
    d = load_dataset(DataConfig(name="event-digits", time_bins=4), 0)
    digits = load_dataset(DataConfig(name="digits"), 0)
    assert d.x_train.shape[1:] == (4, 2, CANVAS, CANVAS) and d.input_shape == (2, CANVAS, CANVAS)
    assert torch.equal(d.y_test, digits.y_test)
    with pytest.raises(DataError, match="time_bins"):
        load_dataset(DataConfig(name="event-digits"), 0)


def _nmnist_bytes(events):
    out = bytearray()
    for x, y, t, p in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 127), (t >> 8) & 255, t & 255])
    return bytes(out)


def test_nmnist_reader_and_folder(tmp_path):
    ev = [(1, 2, 5, 1), (3, 4, 70000, 0), (5, 6, 8388000, 1)]
    raw = _nmnist_bytes(ev[:2]) + bytes([0, 240, 0, 0, 0]) + _nmnist_bytes(ev[2:])
    root = tmp_path / "NMNIST"
    for split in ("Train", "Test"):
        for digit in (3, 7):
            (root / split / str(digit)).mkdir(parents=True)
            (root / split / str(digit) / "00001.bin").write_bytes(raw)
    e = read_nmnist_bin(root / "Train" / "3" / "00001.bin")
    assert list(e["x"]) == [1, 3, 5] and list(e["p"]) == [1, 0, 1]
    assert list(e["t"]) == [5, 70000, 8388000 + (1 << 13)]  # overflow marker adds 2^13 afterwards
    d = load_dataset(DataConfig(name="nmnist", path=str(tmp_path), time_bins=3), 0)
    assert d.x_train.shape == (2, 3, 2, 34, 34) and d.x_train.dtype == torch.uint8
    assert d.y_train.tolist() == [3, 7] and int(d.x_train[0].sum()) == 3
    small = load_dataset(DataConfig(name="nmnist", path=str(root), time_bins=3, resolution=17), 0)
    assert small.x_train.shape == (2, 3, 2, 17, 17) and small.input_shape == (2, 17, 17)


def test_dvsgesture_folder(tmp_path):
    root = tmp_path / "DVSGesture"
    for split in ("ibmGestureTrain", "ibmGestureTest"):
        (root / split / "user01_led").mkdir(parents=True)
        np.save(root / split / "user01_led" / "4.npy", np.array([[1, 2, 1, 0.0], [3, 4, 0, 5.5]]))
    d = load_dataset(DataConfig(name="dvsgesture", path=str(tmp_path), time_bins=2), 0)
    assert d.x_train.shape == (1, 2, 2, 128, 128) and d.y_train.tolist() == [4] and d.num_classes == 11


@pytest.mark.parametrize("name,folder", [("nmnist", "NMNIST"), ("dvsgesture", "DVSGesture"),
                                         ("cifar10-dvs", "CIFAR10DVS"), ("cifar10", "cifar-10-batches-py"),
                                         ("cifar100", "cifar-100-python")])
def test_absent_local_data_is_a_clear_error(tmp_path, name, folder):
    with pytest.raises(DataError, match=folder):
        load_dataset(DataConfig(name=name, path=str(tmp_path), time_bins=4), 0)
    with pytest.raises(DataError, match="data.path"):
        load_dataset(DataConfig(name=name, time_bins=4), 0)


def test_cifar10dvs_needs_tonic_to_decode(tmp_path):
    from neurodeploy.data.neuromorphic import backend_available

    (tmp_path / "CIFAR10DVS" / "airplane").mkdir(parents=True)
    (tmp_path / "CIFAR10DVS" / "airplane" / "a.aedat4").write_bytes(b"junk")
    with pytest.raises(DataError, match="a.aedat4"):
        load_dataset(DataConfig(name="cifar10-dvs", path=str(tmp_path), time_bins=4), 0)
    if not backend_available("tonic"):
        with pytest.raises(DataError, match="tonic"):
            load_dataset(DataConfig(name="cifar10-dvs", path=str(tmp_path), time_bins=4), 0)
