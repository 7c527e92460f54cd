"""What the router tells its shells as it happens: one typed stream instead of per-kind listener lists.

The MCP face turns these into notifications to its clients (``list_changed``,
``resources/updated``); anything else embedding the router can listen too
(:meth:`discovery_router.router.Router.listen`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ComponentsChanged:
    """``server``'s resources, resource templates or prompts changed (or it connected or went away);
    ``server`` is None after a config reload, when any server's may have."""

    server: str | None


@dataclass(frozen=True)
class CatalogChanged:
    """The catalog may have changed: a server's tools were (re)listed, or a reload added or removed servers."""


@dataclass(frozen=True)
class ResourceUpdated:
    """``server`` says a resource a client subscribed to was updated; ``uri`` is the server's own."""

    server: str
    uri: str


RouterEvent = ComponentsChanged | ResourceUpdated | CatalogChanged
Listener = Callable[[RouterEvent], None]


class EventStream:
    """Listeners called in order, synchronously, on the router's event loop; a failing one is skipped."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener``; returns the function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def emit(self, event: RouterEvent) -> None:
        for listener in list(self._listeners):
            listener(event)
