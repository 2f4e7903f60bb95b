"""What an attack may ask of a model: capability mixins and the two estimators.

Modelled on the Adversarial Robustness Toolbox (``art/estimators/estimator.py``): an estimator
declares its capabilities as mixin classes, and an attack lists the capabilities it needs and
checks them before it runs (:func:`check_estimator`), so a gradient attack cannot be pointed at a
simulator by mistake.

- :class:`SourceEstimator` wraps a PyTorch model (images in [0, 1] -> logits). It answers queries
  and gives the gradient of the cross-entropy loss with respect to the input, through the
  surrogate gradient over all T steps (HIRE-SNN eq. 5). It runs the model in eval mode (dropout
  off) and restores the caller's mode afterwards; the surrogate does not depend on the mode, and
  :meth:`SourceEstimator.loss_gradient` runs under ``torch.enable_grad()`` so it works inside a
  ``no_grad`` block too. For a stochastic input coding (rate, poisson) the gradient is the expectation
  over the coding (EOT, Athalye et al. 2018): ∇ₓ E_r[L(f(x; r), y)] ≈ 1/n Σᵢ ∇ₓ L(f(x; rᵢ), y).
- :class:`TargetEstimator` wraps a query function (a target's simulation): logits only, no
  gradients, with a counter of queried samples.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
import logging
from typing import Callable, ContextManager, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AttackError

log = logging.getLogger(__name__)

STOCHASTIC_ENCODINGS = ("rate", "poisson")  # input codings drawn at random on every forward pass

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, y) -> per-sample loss [B]


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")

__all__ = [
    "ClassifierMixin", "LossGradientsMixin", "SourceEstimator", "TargetEstimator", "check_estimator", "eval_mode",
    "predict_batched", "accuracy",
]


class ClassifierMixin(ABC):
    """Capability: answers queries, ``predict(x) -> logits [B, classes]`` (a float tensor)."""

    n_classes: int

    @abstractmethod
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, classes]`` for images ``x``."""


class LossGradientsMixin(ABC):
    """Capability: ``loss_gradient(x, y) -> ∇ₓ L(f(x), y)`` with L the cross-entropy."""

    @abstractmethod
    def loss_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇ₓ of the cross-entropy of ``f(x)`` against ``y``, the shape of ``x``."""


def check_estimator(attack_name: str, estimator: object, needs: Sequence[type]) -> None:
    """Raise :class:`AttackError` unless ``estimator`` has every capability in ``needs``."""
    missing = [c.__name__ for c in needs if not isinstance(estimator, c)]
    if missing:
        what = {"LossGradientsMixin": "gradients", "ClassifierMixin": "queries"}
        need = ", ".join(what.get(m, m) for m in missing)
        raise AttackError(
            f"{attack_name} needs {need}, which {type(estimator).__name__} does not give; "
            f"use a query-only attack (e.g. SquareAttack) or a transfer attack for targets"
        )


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode (dropout off) and restore each one's mode on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


class SourceEstimator(ClassifierMixin, LossGradientsMixin):
    """A white-box PyTorch model: logits and input gradients (surrogate gradient through all T).

    ``eot_samples`` is the number of draws of a stochastic input coding averaged in
    :meth:`loss_gradient` (EOT); ``None`` picks 8 when the model's ``encoding`` is stochastic
    (``"rate"``, ``"poisson"``) and 1 otherwise. ``seed`` seeds the coding's generator so that
    gradients (and so attacks) are reproducible; the model's own generator is restored afterwards.
    ``gradient_variant(model)`` is a context manager entered around the gradient computations only
    (never around :meth:`predict`): it changes how the gradient is estimated (another surrogate
    swapped in, a rate-based backward; :mod:`.gradients`), not what the model predicts.
    """

    def __init__(self, model: nn.Module, n_classes: int | None = None, *, eot_samples: int | None = None,
                 seed: int = 0, gradient_variant: Callable[[nn.Module], ContextManager] | None = None) -> None:
        self.model = model
        self.gradient_variant = gradient_variant
        self.stochastic = getattr(model, "encoding", "direct") in STOCHASTIC_ENCODINGS
        self.eot_samples = int(eot_samples if eot_samples is not None else (8 if self.stochastic else 1))
        if self.eot_samples < 1:
            raise AttackError(f"eot_samples must be >= 1, got {self.eot_samples}")
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed) if self.stochastic else None
        self.n_classes = int(n_classes) if n_classes is not None else -1
        self.queries = 0

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        saved = getattr(self.model, "generator", None)
        if self._generator is not None:
            self.model.generator = self._generator  # type: ignore[assignment]
        try:
            with eval_mode(self.model):
                yield
        finally:
            if self._generator is not None:
                self.model.generator = saved  # type: ignore[assignment]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``f(x)`` (no graph kept)."""
        with self._context(), torch.no_grad():
            out = self.model(x)
        self.queries += len(x)
        if self.n_classes < 0:
            self.n_classes = out.shape[1]
        return out

    def loss_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """∇ₓ CE(f(x), y), summed over the batch (so each row is its own sample's gradient).

        With a stochastic coding: the mean over ``eot_samples`` draws (EOT).
        """
        return self.loss_and_gradient(x, y)[2]

    def loss_and_gradient(self, x: torch.Tensor, y: torch.Tensor, loss: LossFn | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits [B, classes], per-sample loss [B], ∇ₓ Σ_b loss_b) at ``x``, each the mean over the
        ``eot_samples`` draws of a stochastic coding (EOT). ``loss(logits, y) -> [B]`` defaults to
        the cross-entropy; APGD passes the DLR loss (:func:`neurodeploy.attacks.apgd.dlr_loss`)."""
        loss = loss or _ce
        grad = torch.zeros_like(x)
        logits = values = None
        variant = self.gradient_variant(self.model) if self.gradient_variant else contextlib.nullcontext()
        with self._context(), variant, torch.enable_grad():
            for _ in range(self.eot_samples):
                xi = x.detach().clone().requires_grad_(True)
                out = self.model(xi)
                per = loss(out, y)
                (g,) = torch.autograd.grad(per.sum(), xi)
                grad += g
                logits = out.detach() if logits is None else logits + out.detach()
                values = per.detach() if values is None else values + per.detach()
        assert logits is not None and values is not None
        return logits / self.eot_samples, values / self.eot_samples, grad / self.eot_samples


class TargetEstimator(ClassifierMixin):
    """A black box that only answers queries: ``query_fn(x) -> logits or scores`` (numpy or torch).

    No gradients (it has no :class:`LossGradientsMixin`). ``queries`` counts queried samples.
    """

    def __init__(self, query_fn: Callable[[torch.Tensor], np.ndarray | torch.Tensor], n_classes: int) -> None:
        self.query_fn = query_fn
        self.n_classes = int(n_classes)
        self.queries = 0

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.query_fn(x.detach())
        out = torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out).float()
        if out.dim() != 2 or out.shape != (len(x), self.n_classes):
            raise AttackError(
                f"query function returned shape {tuple(out.shape)}; expected ({len(x)}, {self.n_classes}) logits"
            )
        self.queries += len(x)
        return out


def predict_batched(estimator: ClassifierMixin, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits of ``x`` queried in batches."""
    return torch.cat([estimator.predict(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(estimator: ClassifierMixin, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``estimator`` on (x, y)."""
    if len(x) == 0:
        return float("nan")
    pred = predict_batched(estimator, x, batch_size).argmax(1).cpu()
    return int((pred == y.cpu()).sum()) / len(y)
