"""OAuth 2.1 for ``"auth": "oauth"`` remote servers: our token store, the provider, login and logout.

The protocol (discovery, dynamic client registration, PKCE, the code exchange, refresh) is
fastmcp's :class:`~fastmcp.client.auth.OAuth` over the MCP SDK's provider. What is ours:

- :class:`TokenStore`, where the tokens live: the OS keyring when there is a real one, else a
  mode-0600 file under the user data dir; every token value read or written is added to the
  router's redactor, so it is masked in logs, status and errors.
- :class:`RouterOAuth`, which never asks for a person while serving (no tokens, or a refresh the
  server refuses, is :class:`~discovery_router.errors.LoginRequiredError`), refreshes a little
  before expiry and once on a 401 before giving up.
- :func:`login` / :func:`logout`, the logic under ``discovery-router login|logout NAME``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import webbrowser
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, SupportsFloat

import httpx2
from fastmcp.client.auth import OAuth
from mcp.shared.auth import OAuthMetadata

from discovery_router._compat import ensure_oauth_initialized, reset_oauth_state
from discovery_router.config import keyring as keyring_refs
from discovery_router.config.model import ServerConfig
from discovery_router.errors import LoginRequiredError, RouterError, SecretError
from discovery_router.files import atomic_write
from discovery_router.governance.redact import Redactor
from discovery_router.paths import APP_NAME, OAUTH_DIR_NAME, OAUTH_KEYRING_SERVICE, default_data_dir

logger = logging.getLogger(__name__)

REFRESH_AHEAD = 60.0
"""Seconds before an access token's expiry at which it is refreshed (clock skew, slow requests)."""
_SECRET_FIELDS = ("access_token", "refresh_token", "id_token", "client_secret")
_METADATA_KEY = "authorization-server"
"""Where the discovered authorization server metadata is kept beside the tokens (the SDK does not persist it,
and without it a refresh after a restart would go to the MCP server's own origin)."""


# -- where tokens live ---------------------------------------------------------


def oauth_dir() -> Path:
    return default_data_dir() / OAUTH_DIR_NAME


def token_file(server: str) -> Path:
    """The file store of one server's tokens (used when there is no secure OS keyring)."""
    return oauth_dir() / f"{server}.json"


def _stamp_file(server: str) -> Path:
    return oauth_dir() / f"{server}.stamp"


def login_generation(server: str) -> int | None:
    """Changes whenever ``login`` or ``logout`` runs for ``server`` (a running ``serve`` watches it)."""
    try:
        return _stamp_file(server).stat().st_mtime_ns
    except OSError:
        return None


def _touch_stamp(server: str) -> None:
    """A non-secret marker, whatever the backend: the keyring cannot be watched, a file can."""
    stamp = _stamp_file(server)
    atomic_write(stamp, lambda handle: handle.write(str(time.time_ns()).encode()), mode=0o600)


def storage_backend() -> tuple[str, str]:
    """("keyring", backend name) when a real OS keyring is in use, else ("file", why not the keyring)."""
    name = keyring_refs.backend_name()
    insecure = keyring_refs.insecure_backend(name)
    if insecure is None and name is not None:
        return "keyring", name
    return "file", insecure or "there is no OS keyring backend here"


def describe_storage(server: str) -> str:
    """Where ``server``'s tokens are kept, said plainly (shown by ``login``)."""
    kind, detail = storage_backend()
    if kind == "keyring":
        return f"the OS keyring ({detail})"
    return f"{token_file(server)} (mode 0600; not the OS keyring: {detail})"


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


class TokenStore:
    """One server's OAuth state (client registration, tokens, expiry) as the async key-value store
    fastmcp's ``OAuth`` takes, kept as one JSON document in the keyring or in a 0600 file.

    ``staged``: start empty and keep writes in memory until :meth:`commit` (``login`` replaces the
    stored state only once the whole flow has succeeded). Time-to-live values are not enforced:
    token expiry is the provider's business, and an expired registration is re-made by ``login``.
    """

    def __init__(self, server: str, *, redactor: Redactor | None = None, staged: bool = False) -> None:
        self.server = server
        self._redactor = redactor
        self._staged = staged
        self._doc: dict[str, dict[str, Any]] | None = {} if staged else None
        self._lock = asyncio.Lock()

    # -- the backends (sync; run in a thread) --

    def _read(self) -> dict[str, dict[str, Any]]:
        kind, _ = storage_backend()
        text: str | None = None
        if kind == "keyring":
            text = keyring_refs.get_secret(OAUTH_KEYRING_SERVICE, self.server)
        if text is None:  # no keyring entry: a file written before a keyring appeared still counts
            try:
                text = token_file(self.server).read_text(encoding="utf-8")
            except FileNotFoundError:
                return {}
            except OSError as exc:
                raise SecretError(f"cannot read the OAuth tokens of {self.server!r}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
        except ValueError:
            logger.warning("the stored OAuth tokens of %s are unreadable; log in again", self.server)
            return {}
        return doc if isinstance(doc, dict) else {}

    def _write(self, doc: Mapping[str, Any]) -> None:
        text = json.dumps(doc, separators=(",", ":"))
        kind, _ = storage_backend()
        if kind == "keyring":
            keyring_refs.set_secret(OAUTH_KEYRING_SERVICE, self.server, text)
            token_file(self.server).unlink(missing_ok=True)
        else:
            _ensure_private_dir(oauth_dir())
            atomic_write(token_file(self.server), lambda handle: handle.write(text.encode()), mode=0o600)

    async def _load(self) -> dict[str, dict[str, Any]]:
        if self._doc is None:
            self._doc = await asyncio.to_thread(self._read)
            self._remember_secrets(self._doc)
        return self._doc

    def _remember_secrets(self, value: Any) -> None:
        """Every token-like value goes to the redactor the moment the router holds it."""
        if self._redactor is None:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key in _SECRET_FIELDS and isinstance(item, str):
                    self._redactor.add(item)
                else:
                    self._remember_secrets(item)

    async def _save(self) -> None:
        if not self._staged:
            assert self._doc is not None
            await asyncio.to_thread(self._write, self._doc)

    async def commit(self) -> None:
        """Write a staged document to the real store, replacing what was there."""
        assert self._doc is not None
        await asyncio.to_thread(self._write, self._doc)
        await asyncio.to_thread(_touch_stamp, self.server)

    def reload(self) -> None:
        """Read the backend again at the next access (another process logged in or out)."""
        if not self._staged:
            self._doc = None

    async def has_tokens(self) -> bool:
        doc = await self._load()
        return bool(doc.get("mcp-oauth-token"))

    # -- the key-value protocol fastmcp's adapter uses --

    async def get(self, key: str, *, collection: str | None = None) -> dict[str, Any] | None:
        doc = await self._load()
        value = doc.get(collection or "default", {}).get(key)
        return dict(value) if isinstance(value, dict) else None

    async def ttl(self, key: str, *, collection: str | None = None) -> tuple[dict[str, Any] | None, float | None]:
        return await self.get(key, collection=collection), None

    async def put(
        self, key: str, value: Mapping[str, Any], *, collection: str | None = None, ttl: SupportsFloat | None = None
    ) -> None:
        async with self._lock:
            doc = await self._load()
            self._remember_secrets(value)
            doc.setdefault(collection or "default", {})[key] = dict(value)
            await self._save()

    async def delete(self, key: str, *, collection: str | None = None) -> bool:
        async with self._lock:
            doc = await self._load()
            found = doc.get(collection or "default", {}).pop(key, None) is not None
            if found:
                await self._save()
            return found

    async def get_many(self, keys: Sequence[str], *, collection: str | None = None) -> list[dict[str, Any] | None]:
        return [await self.get(key, collection=collection) for key in keys]

    async def ttl_many(
        self, keys: Sequence[str], *, collection: str | None = None
    ) -> list[tuple[dict[str, Any] | None, float | None]]:
        return [await self.ttl(key, collection=collection) for key in keys]

    async def put_many(
        self,
        keys: Sequence[str],
        values: Sequence[Mapping[str, Any]],
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        for key, value in zip(keys, values):
            await self.put(key, value, collection=collection, ttl=ttl)

    async def delete_many(self, keys: Sequence[str], *, collection: str | None = None) -> int:
        return sum([await self.delete(key, collection=collection) for key in keys])


def forget(server: str) -> bool:
    """Delete ``server``'s stored tokens wherever they are; False when there were none."""
    found = False
    with_keyring = storage_backend()[0] == "keyring"
    if with_keyring:
        found = keyring_refs.delete_secret(OAUTH_KEYRING_SERVICE, server)
    path = token_file(server)
    if path.exists():
        path.unlink()
        found = True
    if found or _stamp_file(server).exists():
        _touch_stamp(server)
    return found


# -- the provider --------------------------------------------------------------


ShowUrl = Callable[[str, bool], Awaitable[None] | None]
"""Told the authorization URL and whether a browser was opened for it."""


class RouterOAuth(OAuth):
    """fastmcp's OAuth with the router's rules: a person is asked only by ``login``.

    While serving (``show_url`` is None) a missing token, or a refresh the server refuses, raises
    :class:`LoginRequiredError` instead of opening a browser on a machine nobody is looking at.
    """

    def __init__(
        self,
        config: ServerConfig,
        store: TokenStore,
        *,
        show_url: ShowUrl | None = None,
        open_browser: bool = False,
        callback_timeout: float = 300.0,
        on_login_required: Callable[[], None] | None = None,
    ) -> None:
        """``on_login_required``: told before :class:`LoginRequiredError` is raised. The transport turns an
        exception in a request's auth flow into a bare "connection closed", so the upstream learns it here."""
        settings = config.oauth
        assert settings is not None
        super().__init__(
            mcp_url=config.url,  # bound now: the store and the context exist before the transport is made
            scopes=list(settings.scopes) or None,
            client_name=f"{APP_NAME} ({config.name})",
            token_storage=store,  # type: ignore[arg-type]  # the AsyncKeyValue protocol, structurally
            callback_port=settings.callback_port,
            callback_host="127.0.0.1",
            callback_timeout=callback_timeout,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )
        self.server, self.store = config.name, store
        self._show_url, self._open_browser = show_url, open_browser
        self._on_login_required = on_login_required
        self._generation = login_generation(config.name)

    def _login_required(self) -> LoginRequiredError:
        if self._on_login_required is not None:
            self._on_login_required()
        return LoginRequiredError(self.server)

    async def redirect_handler(self, authorization_url: str) -> None:
        """A person must approve: ``login`` shows the URL (and opens a browser); ``serve`` cannot."""
        if self._show_url is None:
            raise self._login_required()
        opened = self._open_browser and has_display() and await asyncio.to_thread(webbrowser.open, authorization_url)
        shown = self._show_url(authorization_url, bool(opened))
        if shown is not None:
            await shown

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """fastmcp's flow, plus: a login or logout elsewhere is picked up; no tokens while serving is "login
        required" at once (no registration, no discovery); a token near expiry is refreshed first; a 401 is answered by one refresh before the
        full flow (which needs a person)."""
        generation = await asyncio.to_thread(login_generation, self.server)
        if generation != self._generation:  # `login` or `logout` ran meanwhile: use what is stored now
            self._generation = generation
            self.store.reload()
            reset_oauth_state(self)
        await ensure_oauth_initialized(self)
        context = self.context
        if self._show_url is None and context.current_tokens is None:
            raise self._login_required()
        if context.oauth_metadata is None:
            stored = await self.store.get(_METADATA_KEY, collection="router")
            if stored is not None:
                context.oauth_metadata = OAuthMetadata.model_validate(stored)
        expiry = context.token_expiry_time
        if expiry is not None and expiry - time.time() < REFRESH_AHEAD and context.can_refresh_token():
            context.token_expiry_time = 1.0  # in the past: the flow refreshes before sending
        flow = super().async_auth_flow(request)
        refreshed = False
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                if (
                    outgoing is request
                    and response.status_code == 401
                    and not refreshed
                    and context.can_refresh_token()
                ):
                    refreshed = True  # revoked or expired early: try the refresh token once
                    await flow.aclose()
                    context.token_expiry_time = 1.0
                    flow = super().async_auth_flow(request)
                    outgoing = await flow.__anext__()
                    continue
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()


def has_display() -> bool:
    """Whether a browser could be shown here (not over SSH or in a container without a display)."""
    if os.name == "nt" or os.uname().sysname == "Darwin":
        return not os.environ.get("SSH_CONNECTION")
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def auth_for(
    config: ServerConfig, redactor: Redactor | None, on_login_required: Callable[[], None] | None = None
) -> RouterOAuth:
    """The provider a serving connection uses (one per connection attempt: it reloads the store)."""
    return RouterOAuth(config, TokenStore(config.name, redactor=redactor), on_login_required=on_login_required)


class _QuietLoginRequired(logging.Filter):
    """The SDK logs every failed flow with a traceback; "login required" is a state, said once by status."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, LoginRequiredError)


logging.getLogger("mcp.client.auth.oauth2").addFilter(_QuietLoginRequired())


# -- login / logout ------------------------------------------------------------


async def login(
    config: ServerConfig,
    *,
    show_url: ShowUrl,
    open_browser: bool = True,
    redactor: Redactor | None = None,
    timeout: float = 300.0,
) -> str:
    """Run the authorization-code flow against ``config``'s server and store the tokens; returns where.

    The flow starts from nothing (a fresh registration), and the stored state is replaced only when it
    has succeeded, so a login abandoned half way leaves the previous one working.
    """
    from fastmcp import Client

    from discovery_router.upstreams.transports import transport_for

    if config.oauth is None:
        raise RouterError(f'server {config.name!r} does not use OAuth (its entry has no "auth": "oauth")')
    store = TokenStore(config.name, redactor=redactor, staged=True)
    auth = RouterOAuth(config, store, show_url=show_url, open_browser=open_browser, callback_timeout=timeout)
    client: Client[Any] = Client(transport_for(config, auth=auth))
    try:
        async with client:
            await client.list_tools()
    except RouterError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the flow is reported, masked
        from discovery_router.upstreams.connection import describe_exception

        message = describe_exception(exc)
        raise RouterError(f"login to {config.name!r} failed: {redactor(message) if redactor else message}") from None
    if not await store.has_tokens():
        raise RouterError(
            f"login to {config.name!r} failed: the server accepted the connection without tokens "
            '(it may not need OAuth: remove "auth" from its entry)'
        )
    if auth.context.oauth_metadata is not None:
        await store.put(_METADATA_KEY, auth.context.oauth_metadata.model_dump(mode="json"), collection="router")
    await store.commit()
    return describe_storage(config.name)


def logout(config: ServerConfig) -> bool:
    """Forget ``config``'s tokens; False when there were none."""
    if config.oauth is None:
        raise RouterError(f'server {config.name!r} does not use OAuth (its entry has no "auth": "oauth")')
    return forget(config.name)
