"""Markdown building blocks of report.md: cells that stay text and tables that keep their shape."""

from __future__ import annotations

from typing import Any


def md(value: Any) -> str:
    """A table-cell-safe markdown string: no raw HTML, no pipe or newline breaking the row."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_table(head: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    """The lines of a table; every cell escaped (`align`: "l" or "r" per column, numbers right)."""
    align = align or ["l"] + ["r"] * (len(head) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(map(md, head)) + " |", "| " + " | ".join(sep) + " |",
            *["| " + " | ".join(map(md, r)) + " |" for r in rows]]
