"""The attack ensemble: robust accuracy as the per-sample worst case over diverse attacks.

Croce & Hein (ICML 2020, AutoAttack) and Athalye et al. (ICML 2018): one attack with one gradient
overstates robustness, most of all for SNNs whose surrogate gradient may vanish where the attack
needs it (arXiv 2512.22522). The ensemble runs its members one after the other, each on the
samples no member before it broke (the early exit), and a sample counts as robust only if no
member broke it:

    robust accuracy = #{ samples i : f(x_i) = y_i and f(A_m(x_i)) = y_i for every member m } / N

Every break is verified on the model as it is (its :meth:`predict`, never a gradient variant's
forward), on the point the model is fed (rounded to whole events in an integer domain), and
credited to the first member that found it. A member is ``attack@estimator``:

- attacks: ``pgd7`` — the HIRE-SNN protocol (PGD-K with the recipe's α and K, no random start;
  always run first, on every sample, so that the gap protocol − worst case is measured on the
  same images); ``pgd`` — PGD with a uniform random start, α = 2.5ε/K (Madry et al. 2018) and
  ``restarts`` restarts; ``apgd-ce`` / ``apgd-dlr`` — APGD with the CE / DLR loss (:mod:`.apgd`);
  ``square`` — the query-only Square attack (:mod:`.square`) with the preset's budget; ``flip`` —
  the event-budget attack (:mod:`.events`, ℓ1 budget of whole events; its own threat model, run
  by the ``event_budget`` section, not mixed into the L∞ worst case);
- estimators (:mod:`.gradients`): the training surrogate, other surrogates swapped in at attack
  time, an adaptive one, the rate (BPTR) backward; EOT over a stochastic coding in every one.

Consecutive APGD members run side by side in *lanes* (:mod:`.lanes`) when the model's neurons allow
it: one batched forward/backward per step for all of them, each row with its member's estimator and
loss and its own start; all lanes of a sample stop as soon as one breaks it, and the break is
credited to the first member, in the listed order, whose image the model misclassifies. Square
attacks every still-unbroken sample in one batch, each leaving it when broken.

Random starts are drawn for all N samples from a seed per member (its label) and restart and
indexed by sample, so a sample's start depends neither on which others are still being attacked
nor on the member's place in the list.

Each member attacks the samples still unbroken in fixed chunks (``batch_size`` rows; Square an even
number of equal chunks of at most ``SQUARE_CHUNK`` samples), every chunk from its own inputs and
seeds (a stochastic coding's generator re-seeded per chunk), so ``Settings.workers`` processes
(:mod:`.parallel`) give the same images and verdicts as one.
"""
from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass, field

import torch

from ..errors import AttackError
from .apgd import APGD, ce_loss
from .base import IMAGE, Attack, InputDomain
from .estimators import SourceEstimator, predict_batched
from .gradients import applicable, gradient_variant
from .lanes import LaneEstimator, lane_support
from .parallel import map_chunks
from .pgd import PGD
from .square import SquareAttack

log = logging.getLogger(__name__)

ATTACK_KINDS = ("pgd7", "pgd", "apgd-ce", "apgd-dlr", "square", "flip")
ESTIMATOR_FREE = ("square",)  # query-only: no gradient estimator
SQUARE_CHUNK = 96  # samples per Square chunk (its forward passes are this wide)

#: Presets: members (``attack@estimator``), iterations, PGD restarts, Square budget, EOT draws
#: (0: the recipe's). ``fast`` keeps the demo within its time; ``thorough`` is for real evaluations.
PRESETS: dict[str, dict] = {
    # K = 20: K = 40 gave the same worst case at every ε of the demo's sweep but one (ε = 32/255: 0.2618,
    # K = 20: 0.2591) for twice the cost; the three APGD members run side by side in lanes
    "fast": {"members": ["pgd7@train", "apgd-ce@train", "apgd-dlr@train", "apgd-ce@adaptive"],
             "steps": 20, "restarts": 1, "query_budget": 0, "eot": 0},
    # cheapest first (an attack costs its gradient passes per unbroken sample): PGD-7, then the
    # APGD members side by side in lanes (K each), PGD with restarts (restarts × K), Square (budget)
    "thorough": {"members": ["pgd7@train", "apgd-ce@train", "apgd-dlr@train",
                             "apgd-ce@atan0.5", "apgd-ce@atan2", "apgd-ce@atan8", "apgd-ce@tri2", "apgd-ce@sig1",
                             "apgd-ce@rect0.5", "apgd-ce@adaptive", "apgd-ce@bptr", "apgd-dlr@tri2",
                             "apgd-dlr@adaptive", "apgd-dlr@bptr", "pgd@train", "pgd@tri2", "square"],
                 "steps": 100, "restarts": 2, "query_budget": 2000, "eot": 20},
}


@dataclass(frozen=True)
class Member:
    attack: str
    estimator: str = "train"

    @property
    def label(self) -> str:
        return self.attack if self.attack in ESTIMATOR_FREE else f"{self.attack}@{self.estimator}"

    @classmethod
    def parse(cls, text: str) -> "Member":
        attack, _, est = text.partition("@")
        if attack not in ATTACK_KINDS:
            raise AttackError(f"ensemble member {text!r}: unknown attack {attack!r}; choose one of "
                              f"{', '.join(ATTACK_KINDS)} (as attack@estimator)")
        if attack in ESTIMATOR_FREE and est:
            raise AttackError(f"ensemble member {text!r}: {attack} is query-only and takes no estimator")
        gradient_variant(est or "train")  # AttackError naming the estimators if unknown
        return cls(attack, est or "train")


def parse_members(names: list[str], protocol: bool = True) -> list[Member]:
    """Members in order, ``pgd7@train`` first (added if missing, unless ``protocol`` is False: the
    event-budget ensemble has no PGD protocol); AttackError on a bad or repeated name."""
    members = [Member.parse(n) for n in names]
    labels = [m.label for m in members]
    dup = next((lab for lab in labels if labels.count(lab) > 1), None)
    if dup:
        raise AttackError(f"ensemble member {dup!r} is listed twice")
    proto = Member("pgd7", "train")
    return ([proto] if protocol else []) + [m for m in members if m != proto]


@dataclass
class Settings:
    """What the members run with: ε, the protocol's α and K, the preset's K, restarts, budget."""

    epsilon: float
    protocol_step: float = 0.01
    protocol_steps: int = 7
    steps: int = 20
    restarts: int = 1
    query_budget: int = 0
    event_budget: int = 0  # events changed per sample (ℓ1) of the flip members (:mod:`.events`)
    seed: int = 0
    batch_size: int = 256
    domain: InputDomain = IMAGE
    workers: int = 1  # processes the chunks run in (the results do not depend on it: see the module)


@dataclass
class EnsembleResult:
    """Per sample: ``broken`` and ``broken_by`` (a member label, ``clean`` when misclassified
    unattacked, ``""`` when robust) and the worst image found (the breaking one, else the last tried);
    per member: samples attacked, breaks credited, seconds, or why it was skipped."""

    broken: torch.Tensor
    broken_by: list[str]
    x_worst: torch.Tensor
    members: dict[str, dict] = field(default_factory=dict)

    @property
    def robust_accuracy(self) -> float:
        return 1.0 - int(self.broken.sum()) / len(self.broken) if len(self.broken) else float("nan")

    def accuracy_after(self, label: str) -> float:
        """Robust accuracy counting only the clean errors and the breaks of ``label`` (pgd7 runs on all)."""
        hit = sum(1 for b in self.broken_by if b in ("clean", label))
        return 1.0 - hit / len(self.broken_by) if self.broken_by else float("nan")

    def breaks(self) -> dict[str, int]:
        return {label: m.get("breaks", 0) for label, m in self.members.items()}


def _with_domain(attack: Attack, domain: InputDomain) -> Attack:
    attack.domain = domain
    return attack


def _pgd_random(est: SourceEstimator, x: torch.Tensor, y: torch.Tensor, s: Settings,
                starts: list[torch.Tensor]) -> torch.Tensor:
    """PGD with a random start per restart, α = 2.5ε/K; a sample stops at its first misclassified iterate."""
    pgd = _with_domain(PGD(s.epsilon, 2.5 * s.epsilon / max(s.steps, 1), s.steps), s.domain)
    out, broken = x.clone(), torch.zeros(len(x), dtype=torch.bool)
    for noise in starts:
        act = (~broken).nonzero().squeeze(1)
        if len(act) == 0:
            break
        xa = pgd.project(x[act] + s.epsilon * noise[act], x[act])
        for _ in range(s.steps + 1):
            logits, _, g = est.loss_and_gradient(xa, y[act], ce_loss)
            now = logits.argmax(1) != y[act]
            out[act[now]], broken[act[now]] = xa[now], True
            out[act[~now]] = xa[~now]
            keep = ~now
            act, xa, g = act[keep], xa[keep], g[keep]
            if len(act) == 0:
                break
            xa = pgd.project(xa + pgd.step_size * g.sign(), x[act])
    return out


def _member_images(m: Member, est: object, x: torch.Tensor, y: torch.Tensor, s: Settings,
                   starts: list[torch.Tensor]) -> torch.Tensor:
    """The member's images for (x, y) in one batch (projection and rounding follow in the caller)."""
    if m.attack == "pgd7":
        return _with_domain(PGD(s.epsilon, s.protocol_step, s.protocol_steps), s.domain)._generate_batch(
            est, x, y, torch.Generator())
    if m.attack == "pgd":
        return _pgd_random(est, x, y, s, starts)  # type: ignore[arg-type]
    if m.attack in ("apgd-ce", "apgd-dlr"):
        apgd = _with_domain(APGD(s.epsilon, s.steps, m.attack.split("-")[1]), s.domain)
        return apgd.run_from(est, x, y, x + s.epsilon * starts[0])  # type: ignore[arg-type]
    if m.attack == "flip":
        from .events import EventBudgetAttack

        flip = _with_domain(EventBudgetAttack(s.event_budget, max(s.epsilon, 1.0)), s.domain)
        return flip._generate_batch(est, x, y, torch.Generator())  # type: ignore[arg-type]
    raise AttackError(f"no batch runner for {m.attack!r}")


def _reseed(estimators: tuple, seed: int, chunk: int) -> None:
    """A stochastic coding's generators re-seeded for chunk ``chunk`` (its draws do not depend on the
    chunks before it, nor on the process it runs in); nothing for a deterministic coding."""
    for est in estimators:
        gen = getattr(est, "_generator", None)
        if gen is not None:
            gen.manual_seed(seed * 1_000_003 + 7919 * chunk + 1)


def _starts(shape: tuple[int, ...], n: int, seed: int) -> list[torch.Tensor]:
    """``n`` random starts in [−1, 1]ⁿ for every sample (APGD's t/‖t‖∞ is applied by scaling the first)."""
    out = []
    for r in range(n):
        t = torch.rand(shape, generator=torch.Generator().manual_seed(seed * 1009 + r)) * 2 - 1
        out.append(t / t.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, *([1] * (len(shape) - 1))))
    return out


def _estimator(model: torch.nn.Module, m: Member, n_classes: int | None, eot: int | None, seed: int) -> object:
    """The member's gradient estimator: the protocol through the model's own backward; any other
    member through the lane pass when the model allows it (:mod:`.lanes`: the same gradient, the
    shape surrogates without the step-by-step loop), else the swapped-in variant."""
    if m.attack != "pgd7" and not lane_support(model, [m.estimator]):
        from .apgd import LOSSES

        loss = LOSSES["dlr"] if m.attack == "apgd-dlr" else ce_loss
        return LaneEstimator(model, [m.estimator], [loss], n_classes, eot_samples=eot, seed=seed)
    return SourceEstimator(model, n_classes, eot_samples=eot, seed=seed, gradient_variant=gradient_variant(m.estimator))


def _groups(model: torch.nn.Module, members: list[Member], s: Settings) -> list[list[Member]]:
    """Members in order, consecutive APGD members merged into one lane group when the model runs in
    lanes (:func:`.lanes.lane_support`; they share K, so their rows step together)."""
    out: list[list[Member]] = []
    lane_prev = False
    for m in members:
        lane = m.attack in ("apgd-ce", "apgd-dlr") and not lane_support(model, [m.estimator])
        if lane and lane_prev:
            out[-1].append(m)
        else:
            out.append([m])
        lane_prev = lane
    return out


def _run_lanes(model: torch.nn.Module, group: list[Member], x: torch.Tensor, y: torch.Tensor, s: Settings,
               broken: torch.Tensor, broken_by: list[str], x_worst: torch.Tensor, stats: dict,
               n_classes: int | None, eot: int | None) -> None:
    """APGD members side by side (:mod:`.lanes`): each unbroken sample is attacked by every lane from the
    member's own start, all lanes of a sample stop when one breaks it, and the break is verified on the
    model and credited to the first member (in the listed order) whose image the model misclassifies."""
    from .apgd import LOSSES

    t0 = time.perf_counter()
    act = (~broken).nonzero().squeeze(1)
    L = len(group)
    est = LaneEstimator(model, [m.estimator for m in group], [LOSSES[m.attack.split("-")[1]] for m in group],
                        n_classes, eot_samples=eot, seed=s.seed)
    starts = [_starts(tuple(x.shape), 1, s.seed + zlib.crc32(m.label.encode()) % 100_003)[0] for m in group]
    apgd = _with_domain(APGD(s.epsilon, s.steps), s.domain)
    finisher = _with_domain(PGD(s.epsilon), s.domain)
    base = SourceEstimator(model, n_classes, eot_samples=eot, seed=s.seed)
    credit = [0] * L
    per = max(1, s.batch_size // L)  # samples per chunk: about batch_size rows of all lanes
    chunks = [act[i:i + per] for i in range(0, len(act), per)]

    def chunk(ci: int) -> tuple:
        b = chunks[ci]
        n = len(b)
        _reseed((est, base), s.seed, ci)
        xs, ys = x[b].repeat(L, *([1] * (x.dim() - 1))), y[b].repeat(L)
        x0 = torch.cat([x[b] + s.epsilon * t[b] for t in starts])
        est.assign(torch.arange(L).repeat_interleave(n))
        xr = apgd.run_from(est, xs, ys, x0, groups=torch.arange(n).repeat(L), on_rows=est.select).detach()
        xr = finisher.finish(xr, xs)
        wrong = (predict_batched(base, xr, s.batch_size).argmax(1).cpu() != ys).view(L, n)
        return xr.numpy(), wrong.numpy()

    for b, (xr_np, wrong_np) in zip(chunks, map_chunks(chunk, len(chunks), s.workers)):
        n, xr, wrong = len(b), torch.from_numpy(xr_np), torch.from_numpy(wrong_np)
        first = torch.where(wrong.any(0), wrong.float().argmax(0), torch.full((n,), -1))
        for j, lane in enumerate(first.tolist()):
            k = int(b[j])
            if lane >= 0:
                broken[k], broken_by[k] = True, group[lane].label
                x_worst[k] = xr[lane * n + j]
                credit[lane] += 1
            else:
                x_worst[k] = xr[(L - 1) * n + j]
    secs = round(time.perf_counter() - t0, 3)
    for m, c in zip(group, credit):
        stats[m.label] = {"attacked": len(act), "breaks": c, "seconds": secs, "lanes": [g.label for g in group]}
    log.info("ensemble lanes %s: %d of %d attacked samples broken (%.1f s)", "+".join(g.label for g in group),
             sum(credit), len(act), secs)


def run_ensemble(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, members: list[Member], s: Settings, *,
                 n_classes: int | None = None, eot_samples: int | None = None,
                 x_protocol: torch.Tensor | None = None) -> EnsembleResult:
    """Attack (x, y) on ``model`` with each member in turn (see the module); ``x_protocol``: the
    protocol's PGD-K images if already crafted (the attack stage's), reused for ``pgd7``."""
    x, y = x.detach().float(), y.detach().long()
    base = SourceEstimator(model, n_classes, eot_samples=eot_samples, seed=s.seed)
    pred = predict_batched(base, x, s.batch_size).argmax(1).cpu()
    broken = pred != y
    broken_by = ["clean" if b else "" for b in broken.tolist()]
    x_worst = x.clone()
    stats: dict[str, dict] = {}
    finisher = _with_domain(PGD(s.epsilon), s.domain)
    for gi, group in enumerate(_groups(model, members, s)):
        if len(group) > 1:
            _run_lanes(model, group, x, y, s, broken, broken_by, x_worst, stats, n_classes, eot_samples)
            continue
        m = group[0]
        act = (~broken).nonzero().squeeze(1)
        if m.attack not in ESTIMATOR_FREE and not applicable(m.estimator, model):
            stats[m.label] = {"skipped": f"estimator {m.estimator!r} needs SpikingNeuron layers; the model has none"}
            continue
        t0 = time.perf_counter()
        if len(act) == 0:
            x_m = x[act]
        elif m.attack == "pgd7" and x_protocol is not None:
            x_m = x_protocol[act]
        elif m.attack == "square":
            if s.query_budget <= 0:
                stats[m.label] = {"skipped": "query budget 0"}
                continue
            # chunks of the samples still unbroken (a sample leaves its chunk when broken: the early exit)
            sq = _with_domain(SquareAttack(s.epsilon, s.query_budget, seed=s.seed), s.domain)
            # an even number of equal chunks of at most SQUARE_CHUNK samples (they share out evenly over 2 or
            # 4 workers; the split depends on the samples only, never on the workers)
            k = -(-len(act) // SQUARE_CHUNK)
            k += k % 2 if len(act) > 1 else 0
            per = max(1, -(-len(act) // max(k, 1)))
            chunks = [act[i:i + per] for i in range(0, len(act), per)]

            def square_chunk(ci: int, chunks=chunks, sq=sq) -> object:
                _reseed((base,), s.seed, ci)
                gen = torch.Generator().manual_seed(s.seed * 1_000_003 + ci)
                return sq._attack_batch(base, x[chunks[ci]], y[chunks[ci]], gen)[0].numpy()

            x_m = torch.cat([torch.from_numpy(a) for a in map_chunks(square_chunk, len(chunks), s.workers)])
        else:
            est = _estimator(model, m, n_classes, eot_samples, s.seed)
            starts = _starts(tuple(x.shape), max(s.restarts, 1), s.seed + zlib.crc32(m.label.encode()) % 100_003)
            chunks = [act[i:i + s.batch_size] for i in range(0, len(act), s.batch_size)]

            def member_chunk(ci: int, chunks=chunks, est=est, starts=starts, m=m) -> object:
                b = chunks[ci]
                _reseed((est,), s.seed, ci)
                return _member_images(m, est, x[b], y[b], s, [t[b] for t in starts]).detach().numpy()

            parts = [torch.from_numpy(a) for a in map_chunks(member_chunk, len(chunks), s.workers)]
            x_m = torch.cat(parts) if parts else x[act]
        x_m = finisher.finish(x_m, x[act]) if len(act) else x_m
        _reseed((base,), s.seed, 100_000 + gi)  # the verdict's draws, whatever ran in which process
        now = (predict_batched(base, x_m, s.batch_size).argmax(1).cpu() != y[act]) if len(act) else \
            torch.zeros(0, dtype=torch.bool)
        idx = act[now]
        broken[idx] = True
        for i in idx.tolist():
            broken_by[i] = m.label
        x_worst[act] = x_m
        stats[m.label] = {"attacked": len(act), "breaks": int(now.sum()), "seconds": round(time.perf_counter() - t0, 3)}
        log.info("ensemble %s: %d of %d attacked samples broken (%.1f s)", m.label, int(now.sum()), len(act),
                 stats[m.label]["seconds"])
    return EnsembleResult(broken, broken_by, x_worst, stats)


def transfer_worst_case(query_fn, x: torch.Tensor, y: torch.Tensor, candidates: dict[str, torch.Tensor],
                        batch_size: int = 256) -> tuple[torch.Tensor, list[str]]:
    """Per sample on a query-only target: broken by the clean input, then by each candidate image set
    in order (transfers from the source), credited to the first; returns (broken [N], broken_by)."""
    broken = _wrong(query_fn, x, y, batch_size)
    by = ["clean" if b else "" for b in broken.tolist()]
    for label, xc in candidates.items():
        act = (~broken).nonzero().squeeze(1)
        if len(act) == 0:
            break
        now = _wrong(query_fn, xc[act], y[act], batch_size)
        for i in act[now].tolist():
            broken[i], by[i] = True, label
    return broken, by


def _wrong(query_fn, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Per sample: the query function's top class differs from y."""
    import numpy as np

    preds = []
    for i in range(0, len(x), batch_size):
        out = query_fn(x[i:i + batch_size])
        out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        preds.append(out.argmax(1))
    return torch.from_numpy(np.concatenate(preds)).long() != y if preds else torch.zeros(0, dtype=torch.bool)
