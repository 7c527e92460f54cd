"""The MCP client's user confirms a destructive call, through elicitation (the terminal's is in the CLI)."""

from __future__ import annotations

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
