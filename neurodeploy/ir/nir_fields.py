"""Reading NIR node fields (numpy arrays, torch tensors or scalars) and the shared error and note
helpers of the NIR readers (:mod:`.from_nir`, :mod:`.nir_neurons`)."""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import UnsupportedLayerError
from .metadata import DeployMeta

log = logging.getLogger("neurodeploy.ir.from_nir")


def _arr(a) -> np.ndarray:
    """A NIR field (numpy array, torch tensor or scalar) as a float64 numpy array."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(_arr(a), dtype=torch.float32)


def _tuple(v) -> tuple[int, int]:
    a = np.atleast_1d(_arr(v)).astype(int).tolist()
    return (a[0], a[0]) if len(a) == 1 else (a[0], a[1])


def _kind(node) -> str:
    return type(node).__name__


def _refuse(name: str, node, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"node {name!r} ({_kind(node)}): {why}")


def _note(meta: DeployMeta, name: str, text: str) -> None:
    meta.mapping[name] = text
    log.debug("NIR node %s: %s", name, text)


def _scalar_or_tensor(a: np.ndarray) -> torch.Tensor:
    """A scalar tensor when every entry is equal, else the full tensor."""
    flat = a.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return torch.tensor(float(flat[0]), dtype=torch.float32)
    return torch.as_tensor(a, dtype=torch.float32)


def _uniform(a: np.ndarray) -> float:
    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    return float(flat[0]) if flat.size and np.allclose(flat, flat[0], rtol=1e-6, atol=0) else float("nan")
