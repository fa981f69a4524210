"""A tiny ``kind -> "module:attr"`` registry, extended by Python entry points.

Built-in kinds are strings, imported on first use, so naming a registry loads nothing heavy; a
kind whose module fails to import says why (``cannot load the video sink: No module named
'cv2'``), instead of pretending the kind does not exist. Third-party packages add kinds through
entry points in the ``streamseg.sources`` / ``streamseg.sinks`` groups; those are looked up only
when a name is not built in, so a broken plugin never breaks the built-ins.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, TypeVar

from streamseg.errors import BackendUnavailableError, ConfigError

__all__ = ["Registry"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a kind name (``"video"``, ``"rtsp"``, ...) to a factory, given as ``"module:attr"`` or a callable."""

    def __init__(self, group: str, builtins: dict[str, str]) -> None:
        self.group = group
        self.what = group.rsplit(".", 1)[-1].rstrip("s")  # "streamseg.sinks" -> "sink"
        self._factories: dict[str, str | Callable[..., T]] = dict(builtins)

    def register(self, name: str, factory: str | Callable[..., T]) -> None:
        """Add a kind at run time (``"module:attr"`` or the factory itself)."""
        if name in self._factories:
            raise ConfigError(f"{self.group}: {name!r} is already registered")
        self._factories[name] = factory

    def names(self) -> list[str]:
        """Built-in and installed plugin names."""
        plugins = {ep.name for ep in entry_points(group=self.group)}
        return sorted(set(self._factories) | plugins)

    def get(self, name: str) -> Callable[..., T]:
        """The factory for ``name``; an unknown name is a ConfigError naming the closest one."""
        factory = self._factories.get(name)
        if isinstance(factory, str):
            factory = self._factories[name] = self._load(name, factory)
        if factory is not None:
            return factory
        for ep in entry_points(group=self.group):
            if ep.name == name:
                loaded = self._factories[name] = ep.load()
                log.debug("loaded %s plugin %r from %s", self.group, name, ep.value)
                return loaded
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {self.what} kind {name!r}{hint} (known: {', '.join(names)})")

    def _load(self, name: str, target: str) -> Callable[..., T]:
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise BackendUnavailableError(
                f"cannot load the {name} {self.what} ({module}): {exc}; install what it needs and try again"
            ) from exc


def lazy_attribute(module_name: str, table: dict[str, str], attr: str) -> Any:
    """A package's ``__getattr__`` for names that live in submodules loaded on first use."""
    target = table.get(attr)
    if target is None:
        raise AttributeError(f"module {module_name!r} has no attribute {attr!r}")
    return getattr(importlib.import_module(target), attr)
