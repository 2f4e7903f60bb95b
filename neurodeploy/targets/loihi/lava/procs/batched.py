"""Lava's ``Sparse`` synapse with B samples along a trailing axis (fixed point, Lava's own model).

The B-copy network of :mod:`..graph_builder` (``batched``) gives every Lava process the shape
``(n, B)``: column b is sample b's copy of the layer (``LIFReset(shape=(n, B))`` is elementwise,
lava proc/lif/models.py ``PyLifResetModelBitAcc``). A synapse then holds ONE copy of the weights
W ``(o, n)`` and receives the spikes of all B samples as ``S (n, B)``: Lava's bit-accurate sparse
model computes ``weights.dot(s_in)`` (lava-nc 0.10.0 proc/sparse/models.py:98-99, the
``num_message_bits > 0`` branch) = W·S, one sparse × dense product, instead of the
block-diagonal ``diag(W, …, W)`` times the stacked vector (B·nnz multiply-adds with a gathered
index each; W·S reads every weight and index once and runs over B contiguous values). Same
integers: each column of W·S is W·s_b.

:class:`BatchedSparse` is lava's :class:`~lava.proc.sparse.process.Sparse` with the ports and the
``a_buff`` Var given the trailing B axis; :class:`PyBatchedSparseModelBitAcc` is exactly Lava's
``PySparseModelBitAcc`` (proc/sparse/models.py:110-114: the same base
``AbstractPySparseModelBitAcc``, nothing overridden) registered for it: Lava's compiler picks a
model by the exact process type (magma/compiler/compiler_graphs.py:787 ``type(proc) is
cls.implements_process``). Binary spikes must be declared as graded (``num_message_bits ≥ 1``):
the binary branch (models.py:101-102) slices columns by a 1-D mask. With values 0/1 the product
is the same sum of the weights of the columns that spiked.
"""
from __future__ import annotations

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.sparse.models import AbstractPySparseModelBitAcc
from lava.proc.sparse.process import Sparse


class BatchedSparse(Sparse):
    """``Sparse(weights=W, ...)`` whose ``s_in`` is ``(n, copies)`` and ``a_out`` ``(o, copies)``."""

    def __init__(self, *, weights, copies: int, **kwargs) -> None:  # noqa: ANN001 - a scipy matrix
        if int(kwargs.get("num_message_bits", 0)) < 1:
            raise ValueError("BatchedSparse needs num_message_bits >= 1 (Lava's binary branch slices a 1-D mask)")
        super().__init__(weights=weights, **kwargs)
        o, n = self.weights.shape
        # replaced before the process' post-init collects its ports and vars (magma process.py _post_init)
        self.s_in = InPort(shape=(n, int(copies)))
        self.a_out = OutPort(shape=(o, int(copies)))
        self.a_buff = Var(shape=(o, int(copies)), init=0)


@implements(proc=BatchedSparse, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyBatchedSparseModelBitAcc(AbstractPySparseModelBitAcc):
    """Lava's ``PySparseModelBitAcc`` (same base, nothing overridden) for :class:`BatchedSparse`."""
