"""Who can confirm a destructive call: the MCP client's user (elicitation) or the person at a terminal."""

from __future__ import annotations

import asyncio
import sys
from typing import Any
from discovery_router.eras import is_2026_era



class ElicitationConfirmer:
    """Asks through the calling MCP client, if it declared the elicitation capability (form mode).

    On a 2026-07-28 connection the question travels as an
    ``InputRequiredResult`` (the governance layer builds it); on a
    handshake-era one it is an ``elicitation/create`` request sent now.
    """

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        request = getattr(ctx, "request_context", None) if ctx is not None else None
        self._protocol = getattr(request, "protocol_version", None)

    @property
    def available(self) -> bool:
        if self._ctx is None:
            return False
        try:
            capabilities = self._ctx.session.client_capabilities
        except RuntimeError:
            return False
        elicitation = capabilities.elicitation if capabilities else None
        if elicitation is None:
            return False
        return not (elicitation.form is None and elicitation.url is not None)  # URL-only clients show no form

    @property
    def multi_round(self) -> bool:
        return is_2026_era(self._protocol)

    async def ask(self, message: str) -> bool:
        from fastmcp.server.elicitation import AcceptedElicitation

        answer = await self._ctx.elicit(message, bool, response_title="Allow this call?")
        return isinstance(answer, AcceptedElicitation) and answer.data is True


class TerminalConfirmer:
    """``discovery-router call`` at a terminal asks y/N on stderr; in a script nobody can be asked."""

    multi_round = False

    @property
    def available(self) -> bool:
        return sys.stdin.isatty() and sys.stderr.isatty()

    async def ask(self, message: str) -> bool:
        def prompt() -> bool:
            print(message, file=sys.stderr)
            sys.stderr.write("[y/N] ")
            sys.stderr.flush()
            return sys.stdin.readline().strip().casefold() in ("y", "yes")

        return await asyncio.to_thread(prompt)
