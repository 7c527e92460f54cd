"""The calling client, as one call sees it: built once where the call comes in, read all the way down.

The MCP face builds a :class:`FrontContext` per ``call_tool`` request from its
fastmcp ``Context`` (:func:`discovery_router.mcp.context.front_context`); the CLI
builds one with a terminal :class:`Confirmer`; the Python API's default has
nobody to ask. Governance reads the confirmer and the retry fields; the
upstream connection reads the relay and the progress handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import mcp_types

if TYPE_CHECKING:  # fastmcp's client package is heavy; the CLI's fast commands never need it
    from fastmcp.client.progress import ProgressHandler


class FrontRelay(Protocol):
    """What an upstream can reach of the client while one of its requests runs."""

    session_key: object
    """Identifies the client, so asks and log lines are never relayed across clients (equal keys: one client)."""

    @property
    def passes_input_requests(self) -> bool:
        """True when the client answers 2026-era ``InputRequiredResult``s itself (so they go to it unresolved)."""
        ...

    async def log(self, level: str, data: Any, logger_name: str | None) -> None: ...

    def refusal(self, method: str) -> str | None:
        """Why the client cannot be asked ``method`` (it did not declare the capability), or None."""
        ...

    async def ask(self, request: mcp_types.ServerRequest, result_type: type[Any]) -> Any:
        """Send one server-to-client request (sampling, elicitation, roots) and return the client's answer."""
        ...


class Confirmer(Protocol):
    """Whoever can ask the user to confirm a call: the MCP client (elicitation) or a terminal."""

    @property
    def available(self) -> bool:
        """False when nobody can be asked (a client without the elicitation capability, a script)."""
        ...

    @property
    def multi_round(self) -> bool:
        """True to ask by ending the call with an ``InputRequiredResult`` (MCP 2026-07-28) instead of :meth:`ask`."""
        ...

    async def ask(self, message: str) -> bool:
        """Ask now and wait for the answer (handshake-era elicitation, a terminal prompt)."""
        ...


@dataclass(frozen=True)
class FrontContext:
    """Everything a call carries from the client that made it (all optional: a script has none of it)."""

    relay: FrontRelay | None = None
    """Upstream logs and asks reach the calling client through it; None refuses asks with a reason."""
    progress: ProgressHandler | None = None
    """Receives the upstream's progress notifications for this call."""
    confirmer: Confirmer | None = None
    """Asks the user before a destructive call; None means nobody can be asked (the call is refused)."""
    input_responses: mcp_types.InputResponses | None = None
    """A 2026-era client's answers to the questions its previous leg of this call ended with."""
    request_state: str | None = None
    """The sealed state that previous leg ended with, returned unchanged by the client."""
    delivered: Callable[[], Awaitable[None]] | None = None
    """Waits until the progress and log lines relayed so far have gone out to the client: the call's answer
    follows them (they are relayed in tasks of their own, which the answer could otherwise overtake)."""


NOBODY = FrontContext()
"""A caller with no client behind it (the Python API, a script): no relay, no progress, nobody to ask."""
