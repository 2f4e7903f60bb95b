"""Hardware profiles (``targets/*.toml``, shipped in ``neurodeploy/profiles/``): precisions, limits,
latency and energy constants, each constant with its source and the one counted quantity it prices.

Read by the targets (limits, precision, option defaults, the ``[targets]`` that use the profile)
and by the energy stage; every error names the file and the key.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NeurodeployError, ProfileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the Lava venv)
    import tomli as tomllib

TARGETS_DIR = Path(__file__).resolve().parent / "profiles"  # package data (``targets/`` links here)


def read_toml(path: Path, error: type[NeurodeployError], what: str) -> dict[str, Any]:
    """A TOML file as a table; ``error`` naming the file and why for invalid TOML or an unreadable file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid TOML ({e})") from None
    except OSError as e:  # unreadable (permissions, EIO): the reason, with the path
        raise error(f"{path}: cannot read the {what} ({e.strerror or e})") from None


# What a profile's energy constant may price: one counted quantity each (``prices = "..."``).
# Chip quantities are the events a target counts (``Outputs``: synops, layer_spikes, neuron_updates,
# info["neuron_updates_active"], info["duration_ms"]); arithmetic quantities are the ops of
# HIRE-SNN eq. 7/8 at one precision. ``nothing``: a reference or component figure that is not priced
# (e.g. a multiply, a part of a MAC; or the figure another constant was derived from).
CHIP_QUANTITIES = ("synops", "spikes", "neuron_updates", "neuron_updates_active", "neuron_updates_inactive",
                   "milliseconds")
ARITHMETIC_QUANTITIES = tuple(f"{op}.{p}" for p in ("int32", "fp32") for op in ("mac", "ac", "add"))
PRICES = CHIP_QUANTITIES + ARITHMETIC_QUANTITIES + ("nothing",)
# quantities that count the same events: a profile may price only one side of each pair
OVERLAPS = (("neuron_updates", "neuron_updates_active"), ("neuron_updates", "neuron_updates_inactive"))


@dataclass(frozen=True)
class Constant:
    """One physical constant of a hardware profile, with the source it was taken from.

    ``prices``: the one counted quantity it prices (:data:`PRICES`). ``derived_from``: the constants
    whose figure this one was computed from for the same events (a share or a redistribution of
    their energy): the loader refuses a profile that prices a constant together with one it was
    derived from, since the energy would then be counted twice.
    """

    value: float
    unit: str
    source: str
    prices: str = "nothing"
    derived_from: tuple[str, ...] = ()
    note: str = ""


@dataclass
class Profile:
    """A hardware profile (``targets/*.toml``): precisions, limits, energy constants and latency.

    ``energy_caveat``: what a reader must know about the constants wherever a figure made with them
    is printed (e.g. Loihi 2 figures computed with Loihi 1 constants). ``latency``: the table
    ``[latency]`` (``layer_delay_steps``, ``source``, ``note``).
    """

    name: str
    description: str
    energy: dict[str, Constant]
    limits: dict[str, Any]
    precision: dict[str, Any]
    options: dict[str, Any]
    path: str
    energy_caveat: str = ""
    latency: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)  # [targets]: name -> "module:Class" using it

    def joules(self, key: str) -> float:
        """The energy constant ``key`` in joules."""
        c = self.energy[key]
        scale = {"pJ": 1e-12, "nJ": 1e-9, "uJ": 1e-6, "mJ": 1e-3, "J": 1.0}
        return c.value * scale[c.unit]

    def pricing(self, quantity: str) -> str | None:
        """The key of the one constant that prices ``quantity`` (None: the profile does not price it)."""
        return next((k for k, c in self.energy.items() if c.prices == quantity), None)

    def prices_chip_events(self) -> bool:
        """Whether any constant prices a chip event (synops, spikes, neuron updates, time)."""
        return any(c.prices in CHIP_QUANTITIES for c in self.energy.values())


_PROFILE_KEYS = {"name", "description", "energy", "limits", "precision", "options", "energy_caveat", "latency",
                 "targets"}
_TARGET_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # "package.module:Class"


def profile_targets(path: Path, data: dict[str, Any]) -> dict[str, str]:
    """A profile's ``[targets]`` table: target name -> ``"module:Class"`` of the target that uses the
    profile. Shipped profiles declare their targets here, so a new chip is one target module plus
    one profile, and no registry file is edited (see :mod:`neurodeploy.targets.base`)."""
    table = data.get("targets", {})
    if not isinstance(table, dict):
        raise ProfileError(f"{path}: [targets] must be a table of name = \"module:Class\"")
    for name, where in table.items():
        if not isinstance(where, str) or not _TARGET_ENTRY.match(where):
            raise ProfileError(f"{path}: targets.{name} = {where!r}; give the target class as \"package.module:Class\"")
    return dict(table)
_UNITS = ("pJ", "nJ", "uJ", "mJ", "J")
_CONSTANT_FIELDS = {"value", "unit", "source", "note", "prices", "derived_from"}


def _constant(path: Path, key: str, c: Any) -> Constant:
    if not isinstance(c, dict):
        raise ProfileError(f"{path}: energy.{key} must be a table with value, unit, source, prices")
    missing = [k for k in ("value", "unit", "source", "prices") if k not in c]
    if missing:
        what = "every constant needs its source" if "source" in missing else \
            f"say which counted quantity it prices: one of {', '.join(PRICES)}"
        raise ProfileError(f"{path}: energy.{key} lacks {', '.join(missing)} ({what})")
    if not isinstance(c["source"], str) or not c["source"].strip():
        raise ProfileError(f"{path}: energy.{key} has an empty source")
    if c["unit"] not in _UNITS:
        raise ProfileError(f"{path}: energy.{key} unit {c['unit']!r}; use one of {', '.join(_UNITS)}")
    if not isinstance(c["value"], (int, float)) or isinstance(c["value"], bool) or c["value"] < 0:
        raise ProfileError(f"{path}: energy.{key} value must be a non-negative number")
    extra = sorted(set(c) - _CONSTANT_FIELDS)
    if extra:
        raise ProfileError(f"{path}: energy.{key} unknown field {extra[0]!r}")
    if c["prices"] not in PRICES:
        raise ProfileError(f"{path}: energy.{key} prices {c['prices']!r}; use one of {', '.join(PRICES)}")
    der = c.get("derived_from", [])
    der = [der] if isinstance(der, str) else der
    if not isinstance(der, list) or not all(isinstance(d, str) for d in der):
        raise ProfileError(f"{path}: energy.{key} derived_from must be a constant name or a list of them")
    return Constant(float(c["value"]), c["unit"], c["source"], c["prices"], tuple(der), str(c.get("note", "")))


def check_pricing(path: str | Path, energy: dict[str, Constant]) -> None:
    """Refuse a profile that counts any energy twice (ProfileError naming the constants).

    Each counted quantity is priced by at most one constant; overlapping quantities
    (:data:`OVERLAPS`) are not both priced; and no priced constant is derived (directly or
    through others) from another priced constant.
    """
    by: dict[str, str] = {}
    for k, c in energy.items():
        if c.prices == "nothing":
            continue
        if c.prices in by:
            raise ProfileError(f"{path}: energy.{by[c.prices]} and energy.{k} both price {c.prices!r}: "
                               "each counted quantity is priced once")
        by[c.prices] = k
    for a, b in OVERLAPS:
        if a in by and b in by:
            raise ProfileError(f"{path}: energy.{by[a]} prices {a!r} and energy.{by[b]} prices {b!r}, which "
                               f"are part of the same events: price one or the other")
    for k, c in energy.items():
        seen, todo = set(), list(c.derived_from)
        while todo:
            d = todo.pop()
            if d not in energy:
                raise ProfileError(f"{path}: energy.{k} derived_from {d!r}, which is not a constant of this profile")
            if d in seen:
                continue
            seen.add(d)
            if c.prices != "nothing" and energy[d].prices != "nothing":
                raise ProfileError(f"{path}: energy.{k} (prices {c.prices!r}) is derived from energy.{d} "
                                   f"(prices {energy[d].prices!r}): pricing both counts the same energy twice; "
                                   f"set prices = \"nothing\" on one of them")
            todo += list(energy[d].derived_from)


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a hardware profile; every energy constant must carry ``value``, ``unit``, ``source`` and
    ``prices``, and the profile must price every counted quantity once (:func:`check_pricing`)."""
    p = Path(name_or_path)
    path = p if (p.suffix == ".toml" or p.exists()) else TARGETS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ProfileError(f"{path}: profile file not found")
    data = read_toml(path, ProfileError, "profile")
    unknown = sorted(set(data) - _PROFILE_KEYS)
    if unknown:
        raise ProfileError(f"{path}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_PROFILE_KEYS))}")
    if not isinstance(data.get("name"), str):
        raise ProfileError(f"{path}: missing 'name'")
    energy = {key: _constant(path, key, c) for key, c in data.get("energy", {}).items()}
    check_pricing(path, energy)
    latency = dict(data.get("latency", {}))
    if latency and not isinstance(latency.get("layer_delay_steps"), int):
        raise ProfileError(f"{path}: latency.layer_delay_steps must be an integer (time steps each layer adds)")
    if latency and not str(latency.get("source", "")).strip():
        raise ProfileError(f"{path}: latency lacks a source")
    return Profile(
        name=data["name"],
        description=str(data.get("description", "")),
        energy=energy,
        limits=dict(data.get("limits", {})),
        precision=dict(data.get("precision", {})),
        options=dict(data.get("options", {})),
        path=str(path),
        energy_caveat=str(data.get("energy_caveat", "")),
        latency=latency,
        targets=profile_targets(path, data),
    )
