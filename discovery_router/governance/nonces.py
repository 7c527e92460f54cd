"""Which confirmation nonces are spent: the memory that makes one "yes" run a destructive call once.

Each request state the guard mints for a 2026-era confirmation carries a
nonce; the first leg that presents it spends it, and a replay is asked again.
The framework's seal (:mod:`discovery_router.mcp.state_key`) makes a state
verifiable on every replica, but this memory is what says "already used".

:class:`SpentNonces` is the store's interface; :class:`MemoryNonces`, the
default, remembers in this process only. **Its limit behind a load balancer**:
a client that re-sends an accepted answer to each of N replicas within the
state's lifetime (600 s) runs the call up to N times, once per replica (never
twice on one). With the team database (``database_url``) the router uses
:class:`discovery_router.team.replica.SharedNonces` instead: one table, one
``INSERT ... ON CONFLICT DO NOTHING`` per spend, so a "yes" runs once team-wide.
"""

from __future__ import annotations

import time
from typing import Protocol


class SpentNonces(Protocol):
    """Remembers spent nonces until their state expires (after that the state is refused anyway)."""

    async def spend(self, nonce: str, expires_at: float) -> bool:
        """True the first time ``nonce`` is presented, False ever after (until ``expires_at``, a Unix time)."""
        ...


class MemoryNonces:
    """Spent nonces in this process's memory: exact for one process, once per replica behind a balancer."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}

    async def spend(self, nonce: str, expires_at: float) -> bool:
        now = time.time()
        for old in [n for n, expires in self._spent.items() if expires < now]:
            del self._spent[old]
        if nonce in self._spent:
            return False
        self._spent[nonce] = expires_at
        return True
