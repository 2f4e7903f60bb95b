"""One registry helper for everything chosen by name: models, targets, datasets, attacks, ...

In the manner of timm (``timm/models/_registry.py``: ``@register_model``, ``list_models(filter)``,
``create_model(name)``), with two differences that follow from this package's error rules:

- a name registered twice is refused (:class:`~neurodeploy.errors.RegistryError`) instead of
  silently replacing the first entry;
- an unknown name raises the package's own error (by default ``RegistryError``, or the error
  class the registry was made with, e.g. ``TargetError``) and the message lists the names there are.

An entry can be *lazy*: a ``"module:attr"`` string imported on first use (the targets registry
lists Lava and sinabs without importing them). When the module defines the entry with
``register``/``add`` itself, that definition replaces the lazy string; otherwise ``attr`` is
read from the module.

    MODELS = Registry("model")

    @MODELS.register("digits_mlp")
    def digits_mlp(cfg, input_shape, num_classes): ...

    MODELS.get("digits_mlp")  # the function;  MODELS.names() -> ["digits_mlp"]
"""
from __future__ import annotations

import fnmatch
import importlib
import logging
from typing import Callable, Generic, Iterator, TypeVar

from .errors import NeurodeployError, RegistryError

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Lazy(str):
    """A ``"module:attr"`` entry not imported yet."""


def _qualified(obj: object) -> str:
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"


def _defines(lazy: str, obj: object) -> bool:
    """Whether ``obj`` is what the lazy ``"module:attr"`` names (defined in that module or a submodule
    of that package, under that name)."""
    mod, _, attr = lazy.partition(":")
    where = getattr(obj, "__module__", "") or ""
    return getattr(obj, "__qualname__", None) == attr and (where == mod or where.startswith(mod + "."))


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` is used in messages: "unknown model 'x'; available: ...").

    ``error`` is the exception raised for an unknown or unimportable name (a subclass of
    :class:`~neurodeploy.errors.NeurodeployError`); duplicates always raise ``RegistryError``.
    """

    def __init__(self, kind: str, error: type[NeurodeployError] = RegistryError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, T | _Lazy] = {}

    # ------------------------------------------------------------------ filling
    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; a name already taken raises ``RegistryError``.

        The lazy entry ``"module:attr"`` of the same object is not a duplicate: it is the entry
        being defined by the import it asked for.
        """
        old = self._entries.get(name)
        if old is not None and old is not obj and not (isinstance(old, _Lazy) and _defines(old, obj)):
            where = old if isinstance(old, _Lazy) else _qualified(old)
            raise RegistryError(f"{self.kind} {name!r} is already registered (by {where}); choose another name")
        self._entries[name] = obj
        return obj

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``"module:attr"``, imported when ``name`` is first asked for."""
        if ":" not in target:
            raise ValueError(f"lazy {self.kind} entry {target!r} must be 'module:attr'")
        if name in self._entries:
            raise RegistryError(f"{self.kind} {name!r} is already registered; choose another name")
        self._entries[name] = _Lazy(target)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` (default: the object's ``__name__``)."""

        def deco(obj: T) -> T:
            return self.add(name or getattr(obj, "__name__"), obj)

        return deco

    # ------------------------------------------------------------------ reading
    def names(self, pattern: str = "*") -> list[str]:
        """Registered names (lazy ones included, nothing imported) matching a glob pattern, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> T:
        """The entry ``name``, importing a lazy one; ``self.error`` names the available ones."""
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or '(none)'}")
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            mod, _, attr = entry.partition(":")
            try:
                module = importlib.import_module(mod)
            except ModuleNotFoundError as e:
                raise self.error(f"{self.kind} {name!r} is not available: {e}") from None
            if isinstance(self._entries[name], _Lazy):  # the module did not register it itself
                self._entries[name] = getattr(module, attr)
            log.debug("%s %r imported from %s", self.kind, name, entry)
            entry = self._entries[name]
        return entry  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
