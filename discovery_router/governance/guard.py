"""The router's call guard: policy verdicts, the user's confirmation, and one audit line per call.

:class:`~discovery_router.router.Router` owns one :class:`Governance` and
hands it every call as one step, shaped like fastmcp's middleware
(``on_call_tool(context, call_next)``): :meth:`Governance.on_call_tool` takes
the :class:`ToolCall` and the step that forwards it, owns the call's audit
record, resolves and validates it (through the call), decides, asks, and
only then calls the next step. The MCP server, pinned tools and the CLI
therefore obey the same policy and leave the same trail. Asking the user is
the caller's part (only the MCP layer can elicit, only the CLI has a
terminal): its :class:`~discovery_router.front.FrontContext` carries a
:class:`~discovery_router.front.Confirmer`.

Confirmation in the two MCP protocol eras:

- handshake era: the server sends ``elicitation/create`` mid-call and waits
  (``Confirmer.ask``);
- 2026-07-28: there is no back-channel, so the call ends with an
  ``InputRequiredResult`` carrying the question, and the client repeats the
  call with the answer (SEP-2322). The request state, sealed by the MCP
  framework, binds the answer to this exact tool and these exact arguments,
  and keeps the confirmation while the upstream asks questions of its own.
  Each state carries a nonce that authorizes one leg only: a client re-sending
  an accepted answer (or a confirmed follow-up leg) is asked again, so one
  "yes" never runs a destructive call twice (per replica, unless the spent
  nonces are shared: see :mod:`discovery_router.governance.nonces`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types

from discovery_router.governance import audit
from discovery_router.governance.audit import AuditLog, AuditSink
from discovery_router.catalog import ToolEntry
from discovery_router.config.model import RouterSettings
from discovery_router.front import FrontContext
from discovery_router.errors import (
    AmbiguousToolError,
    LoginRequiredError,
    InvalidArgumentsError,
    PolicyRefusedError,
    UnknownServerError,
    UnknownToolError,
    UpstreamCallError,
    UpstreamUnavailableError,
)
from discovery_router.governance.nonces import MemoryNonces, SpentNonces
from discovery_router.governance.policy import Policy, ServerPolicy, ToolPolicy, Verdict

logger = logging.getLogger(__name__)

CONFIRM_KEY = "discovery-router/confirm"
"""The router's own key among a call's ``input_requests``; never forwarded upstream."""
CONFIRM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"value": {"type": "boolean", "title": "Allow this call?"}},
    "required": ["value"],
}
"""A single yes/no box: the shape fastmcp's ``ctx.elicit(message, bool)`` sends, in both eras."""
_STATE_MARK = "discovery-router"
STATE_LIFETIME = 600.0
"""Seconds a request state of ours is honoured (the MCP SDK's own seal lifetime); its nonce is remembered
as spent for as long, then forgotten because the state is refused as expired anyway."""
CLOCK_SKEW = 5.0
"""Seconds another replica's clock may run ahead of ours: its fresh state is not "from the future" here."""


@dataclass(frozen=True)
class Leg:
    """What this leg of an authorized call sends upstream, or the question it ends with instead."""

    input_responses: mcp_types.InputResponses | None = None
    request_state: str | None = None
    ask: mcp_types.InputRequiredResult | None = None
    """Set when this leg must end by asking the user; nothing is forwarded."""
    confirmed_call: str | None = None
    """The digest of a call the user confirmed on a 2026-era client, kept across the upstream's own asks."""

    def wrap(self, result: Any) -> Any:
        """Keep the confirmation inside the request state of an upstream's own ``InputRequiredResult``."""
        if self.confirmed_call is None or not isinstance(result, mcp_types.InputRequiredResult):
            return result
        state = _encode_state(self.confirmed_call, confirmed=True, upstream=result.request_state)
        return result.model_copy(update={"request_state": state})


@dataclass
class ToolCall:
    """One call as it travels down: what the client sent, then what the router made of it.

    ``prepare`` is the router's own step (resolve the id, repair and validate the
    arguments); the guard runs it inside the call's audit record, so an unknown
    tool or invalid arguments leave their line too.
    """

    name: str
    raw_arguments: Mapping[str, Any] | str | None
    front: FrontContext
    prepare: Callable[[ToolCall], Awaitable[None]]
    """Fills in ``entry`` and ``arguments``, or raises a RequestError (nothing is sent then)."""
    entry: ToolEntry | None = None
    arguments: dict[str, Any] | None = None
    confirmed: bool = False
    started: float = field(default_factory=time.monotonic)
    time: str = field(default_factory=audit.now_iso)


Result = mcp_types.CallToolResult | mcp_types.InputRequiredResult
Forward = Callable[[ToolCall, Leg], Awaitable[Result]]
"""The next step: send this leg of the call upstream and return the upstream's answer unchanged."""


_INVALID = (UnknownToolError, AmbiguousToolError, InvalidArgumentsError, UnknownServerError)
_UPSTREAM = (UpstreamCallError, UpstreamUnavailableError, LoginRequiredError)


class Governance:
    """Policy plus audit log for one router."""

    def __init__(
        self,
        policy: Policy | None = None,
        audit_log: AuditSink | None = None,
        redact: Callable[[str], str] = lambda text: text,
        nonces: SpentNonces | None = None,
    ) -> None:
        self.policy = policy or Policy()
        self.audit_log = audit_log
        self.redact = redact
        self._audit_failed = False
        self.nonces: SpentNonces = nonces or MemoryNonces()
        """Nonces of request states already used to authorize a leg (per process unless a shared store is given)."""

    def exposes(self, server: str, tool_name: str) -> bool:
        return self.policy.exposes(server, tool_name)

    def decide(self, server: str, tool: mcp_types.Tool) -> ToolPolicy:
        return self.policy.decide(server, tool)

    async def on_call_tool(self, call: ToolCall, forward: Forward) -> Result:
        """Guard one call: prepare it, decide, ask the user if the policy says so, forward; one audit line.

        An ``InputRequiredResult`` (the user or the upstream must answer first)
        is not the end of the call: that leg writes no line, its retry does.
        """
        try:
            await call.prepare(call)
            assert call.entry is not None
            leg = await self._authorize(call, call.entry)
            if leg.ask is not None:
                return leg.ask  # the client asks its user, then repeats the call with the answer
            result = leg.wrap(await forward(call, leg))
        except PolicyRefusedError as exc:
            self._write(call, audit.REFUSED, reason=str(exc))
            raise
        except _INVALID:
            self._write(call, audit.INVALID)
            raise
        except _UPSTREAM:
            self._write(call, audit.UPSTREAM_FAILURE)
            raise
        except asyncio.CancelledError:
            self._write(call, audit.CANCELLED)
            raise
        except BaseException:
            self._write(call, audit.ERROR)
            raise
        if isinstance(result, mcp_types.CallToolResult):
            self._write(call, audit.TOOL_ERROR if result.is_error else audit.OK)
        return result

    async def _authorize(self, call: ToolCall, entry: ToolEntry) -> Leg:
        """Decide this leg of a call: go ahead (with what to forward), ask the user, or raise a refusal.

        ``input_responses``/``request_state`` are the client's retry fields
        (MCP 2026-07-28); the router's own answer and state are taken out of
        them before anything goes upstream.
        """
        confirmer = call.front.confirmer
        input_responses, request_state = call.front.input_responses, call.front.request_state
        decision = entry.policy or self.decide(entry.server, entry.tool)  # decided when the catalog was built
        if decision.verdict is Verdict.ALLOW:
            return Leg(input_responses, request_state)
        if decision.verdict is Verdict.REFUSE:
            raise PolicyRefusedError(f"Refused by the router's policy: {decision.reason}")
        if confirmer is None or not confirmer.available:
            raise PolicyRefusedError(
                f"Refused by the router's policy: {decision.reason}, so each call needs the user's confirmation, "
                "but this client cannot ask the user (it does not support MCP elicitation). To allow unattended "
                f"calls, set {decision.setting} to false."
            )
        arguments = call.arguments or {}
        digest = call_digest(entry, arguments)
        ours, upstream_state = _decode_state(request_state)
        upstream_responses = {k: v for k, v in (input_responses or {}).items() if k != CONFIRM_KEY} or None
        if (
            ours is not None
            and ours.get("call") == digest
            and ours.get("confirmed") is True
            and await self._spend(ours)
        ):
            call.confirmed = True  # an upstream's follow-up leg of a call the user already confirmed
            return Leg(upstream_responses, upstream_state, confirmed_call=digest)
        message = confirmation_message(entry, arguments, self.redact)
        if confirmer.multi_round:
            answer = (input_responses or {}).get(CONFIRM_KEY)
            if (
                answer is None
                or ours is None
                or ours.get("call") != digest
                or ours.get("confirmed") is not False
                or not await self._spend(ours)
            ):  # no answer, another call's, or one already used: ask (again)
                question = mcp_types.ElicitRequest(
                    params=mcp_types.ElicitRequestFormParams(message=message, requested_schema=CONFIRM_SCHEMA)
                )
                state = _encode_state(digest, confirmed=False)
                return Leg(
                    ask=mcp_types.InputRequiredResult(input_requests={CONFIRM_KEY: question}, request_state=state)
                )
            accepted = (
                isinstance(answer, mcp_types.ElicitResult)
                and answer.action == "accept"
                and (answer.content or {}).get("value") is True
            )
        else:
            accepted = await confirmer.ask(message)
        if not accepted:
            raise PolicyRefusedError(f"Refused: the user declined to run {entry.id}. Do not retry unless asked to.")
        call.confirmed = True
        return Leg(upstream_responses, None, confirmed_call=digest if confirmer.multi_round else None)

    async def _spend(self, ours: Mapping[str, Any]) -> bool:
        """Use up a request state's nonce: True the first time within its lifetime, False ever after.

        The issue time comes from a state only the framework's seal could have made (a shared key: any
        replica's), so replicas need only roughly agreeing clocks; a state from the future is refused.
        """
        nonce, issued = ours.get("nonce"), ours.get("issued")
        if (
            not isinstance(nonce, str)
            or not isinstance(issued, (int, float))
            or not -CLOCK_SKEW <= time.time() - issued <= STATE_LIFETIME
        ):
            return False
        return await self.nonces.spend(nonce, issued + STATE_LIFETIME)

    def _write(self, record: ToolCall, outcome: str, reason: str | None = None) -> None:
        if self.audit_log is None:
            return
        entry = record.entry
        arguments = record.arguments if record.arguments is not None else _best_effort_arguments(record.raw_arguments)
        line: dict[str, Any] = {
            "time": record.time,
            "server": entry.server if entry else None,
            "tool": entry.name if entry else record.name,
            "duration_ms": round((time.monotonic() - record.started) * 1000, 1),
            "outcome": outcome,
            "argument_keys": sorted(arguments),
        }
        if entry is not None and self.policy.server(entry.server).audit_arguments:
            line["arguments"] = arguments
        if record.confirmed:
            line["confirmed"] = True
        if reason:
            line["reason"] = reason
        try:
            self.audit_log.write(line)
            self._audit_failed = False
        except (OSError, TypeError, ValueError) as exc:
            if not self._audit_failed:  # say it once per failure streak, not on every call
                logger.warning("cannot write the audit log %s: %s", self.audit_log.where, exc)
            self._audit_failed = True


def _best_effort_arguments(raw: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """The argument object before validation (for calls rejected early), or {} when there is none."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return {}
    return dict(raw) if isinstance(raw, Mapping) else {}


def _encode_state(call: str, *, confirmed: bool, upstream: str | None = None) -> str:
    """Our part of a request state, with a fresh single-use nonce and its issue time, plus the upstream's."""
    ours = {"call": call, "confirmed": confirmed, "nonce": secrets.token_urlsafe(16), "issued": time.time()}
    return json.dumps({_STATE_MARK: ours, "upstream": upstream})


def _decode_state(state: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(our part, the upstream's state) of a request state; ours is None when the state is not ours.

    The MCP framework seals the state before it reaches the client and
    verifies it when it comes back, so a client cannot forge "confirmed".
    """
    if not state:
        return None, None
    try:
        decoded = json.loads(state)
    except (json.JSONDecodeError, TypeError):
        return None, state
    if not isinstance(decoded, dict) or not isinstance(decoded.get(_STATE_MARK), dict):
        return None, state
    return decoded[_STATE_MARK], decoded.get("upstream")


def call_digest(entry: ToolEntry, arguments: Mapping[str, Any]) -> str:
    """Names this exact call, so an answer given for one call never authorizes another."""
    canonical = json.dumps([entry.id, arguments], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def confirmation_message(entry: ToolEntry, arguments: Mapping[str, Any], redact: Callable[[str], str]) -> str:
    """What the user is asked: the tool, its own one-line description, and the exact arguments.

    The values are shown (secrets masked) because "delete_repo" means nothing
    to a person until they see which repository.
    """
    description = " ".join((entry.tool.description or "").strip().split("\n\n", 1)[0].split())[:200]
    shown = json.dumps(arguments, ensure_ascii=False, default=str)
    if len(shown) > 600:
        shown = shown[:599] + "…"
    text = f"An agent wants to run {entry.id}, which may change or delete data."
    if description:
        text += f" The tool says: {description}"
    return redact(f"{text} Arguments: {shown}. Allow this call?")


def governance_for(
    policies: Mapping[str, ServerPolicy],
    settings: RouterSettings,
    redact: Callable[[str], str],
    nonces: SpentNonces | None = None,
) -> Governance:
    """The governance a router's settings and per-server policies ask for (servers not named get the defaults).

    ``nonces``: a store of spent confirmation nonces shared by every replica (default: this process's memory).
    """
    own = dict(policies)
    path = audit.audit_path(settings.audit_log)
    log = (
        None
        if path is None
        else AuditLog(path, max_bytes=settings.audit_max_bytes, backups=settings.audit_backups, redact=redact)
    )
    policy = Policy(own, read_only=settings.read_only, confirm_destructive=settings.confirm_destructive)
    return Governance(policy, log, redact, nonces)
