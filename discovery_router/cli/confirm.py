"""The person at a terminal confirms a destructive call (``discovery-router call``)."""

from __future__ import annotations

import asyncio
import sys


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
