"""Printing for every command: rich tables on a terminal, plain lines or JSON otherwise; the exit codes.

Plain output (stdout not a terminal) is one tab-separated row per line under a
``# title`` line and a ``#``-prefixed header, so ``grep``/``cut``/``awk`` work.
Every string goes through a redactor first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
"""Success; the command ran and failed (message on stderr); bad command-line usage (as argparse)."""

STYLES = {
    "ok": "green",
    "add": "green",
    "added": "green",
    "restored": "green",
    "installed": "green",
    "warn": "yellow",
    "rename": "yellow",
    "merged": "yellow",
    "fail": "bold red",
    "error": "bold red",
    "skip": "dim",
    "ignore": "dim",
    "connected": "green",
    "connecting": "yellow",
    "failed": "bold red",
    "disabled": "dim",
}


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: list[Any] = field(default_factory=list)
    """Each a sequence of cells (``list[Any]``: callers build rows of their own cell types)."""
    status_column: int | None = 0  # the cell coloured by its value


class Output:
    def __init__(
        self,
        *,
        as_json: bool = False,
        stream: TextIO | None = None,
        redact: Callable[[str], str] = lambda text: text,
        force_terminal: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.as_json = as_json
        tty = force_terminal if force_terminal is not None else _isatty(self.stream)
        self.rich = not as_json and tty
        self.redact = redact
        self._console: Any = None
        if self.rich:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False, soft_wrap=False)

    def table(self, table: Table) -> None:
        if self.as_json:
            return
        rows = [[self.redact("" if cell is None else str(cell)) for cell in row] for row in table.rows]
        if self.rich:
            from rich.table import Table as RichTable
            from rich.text import Text

            rich_table = RichTable(title=Text(table.title, style="bold"), title_justify="left", header_style="bold")
            for column in table.columns:
                rich_table.add_column(column, overflow="fold")
            for row in rows:
                cells = [
                    Text(cell, style=STYLES.get(cell, "") if i == table.status_column else "")
                    for i, cell in enumerate(row)
                ]
                rich_table.add_row(*cells)
            self._console.print(rich_table)
            return
        print(f"# {self.redact(table.title)}", file=self.stream)
        print("#" + "\t".join(table.columns), file=self.stream)
        for row in rows:
            print("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row), file=self.stream)

    def line(self, text: str, status: str | None = None) -> None:
        """A message line; ``status`` colours it on a terminal (ok / warn / fail ...)."""
        if self.as_json:
            return
        text = self.redact(text)
        if self.rich:
            from rich.text import Text

            self._console.print(Text(text, style=STYLES.get(status or "", "")))
        else:
            print(text, file=self.stream)

    def blank(self) -> None:
        if not self.as_json:
            print(file=self.stream)

    def document(self, data: Any) -> None:
        """The JSON document (``--json`` only)."""
        if self.as_json:
            print(self.redact(json.dumps(data, indent=2, ensure_ascii=False)), file=self.stream)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
