"""A real OAuth-protected MCP server on 127.0.0.1 for the OAuth tests.

FastMCP's :class:`InMemoryOAuthProvider` is a complete authorization server (metadata discovery,
dynamic client registration, PKCE-checked code exchange, refresh with rotation); its consent
auto-approves, redirecting straight to the client's callback as a browser would be redirected.
It runs in a thread of the test process, so a test can revoke tokens in it directly.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions

from devkit.system import free_port


class OAuthUpstream:
    """An MCP server at ``self.url`` that answers only requests bearing a token it issued."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/mcp"
        self.provider = InMemoryOAuthProvider(
            base_url=self.base,
            client_registration_options=ClientRegistrationOptions(enabled=True),
            revocation_options=RevocationOptions(enabled=True),
        )
        mcp = FastMCP("vault", auth=self.provider)

        @mcp.tool
        def vault_balance(account: str) -> str:
            """The balance of one account in the vault."""
            return f"{account}: 1234.56 EUR"

        config = uvicorn.Config(mcp.http_app(path="/mcp"), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="oauth-upstream", daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the OAuth upstream did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def issued(self) -> set[str]:
        """Every token value this server ever handed out that it still knows (access and refresh)."""
        return set(self.provider.access_tokens) | set(self.provider.refresh_tokens)

    def revoke_access_tokens(self) -> None:
        """Forget the access tokens only (as a server does when they expire early); refresh tokens still work."""
        self.provider.access_tokens.clear()

    def revoke_everything(self) -> None:
        """The user revoked the app: neither access nor refresh tokens work any more."""
        self.provider.access_tokens.clear()
        self.provider.refresh_tokens.clear()
