"""What the importer passes between its steps: raw records, drafted rows, bad rows, progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import HarnessError
from harness.core.suites.problems import _printable

# (what is being read, how much is done, the total or None): the CLI draws a progress bar from it;
# the core only counts (the bar itself belongs to a layer above).
ProgressFn = Callable[[str, int, "int | None"], None]
# Target before the task is known: a string, several references, or an object of fields.
RawTarget = str | tuple[str, ...] | dict[str, Any]
# How many bad rows an error lists: the first ones say what is wrong with a file.
MAX_LISTED = 20


def no_progress(what: str, done: int, total: int | None) -> None:
    """The default ProgressFn: nothing drawn."""


@dataclass(frozen=True)
class Record:
    """One row as a reader found it: where it is (`file:line`), its number in its source (1-based,
    for generated ids), and its value (a dict for a good row) or why it could not be read."""

    where: str
    number: int
    value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Draft:
    """A row turned into an example, but for the parts that depend on all the rows: the suite's
    instruction (`instruction`, a candidate to share) and the target's final type (the task)."""

    where: str
    number: int
    input: str  # the input once `instruction` is the suite's (shared) one
    target: RawTarget
    meta: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # from --id; None: generated from `number`
    instruction: str | None = None  # a system message / alpaca instruction this row carries
    with_instruction: str = ""  # the input when `instruction` is not the suite's: the row keeps it


class BadRowsError(HarnessError):
    """Rows that cannot become examples (without --skip-bad): each `file:line: why`."""

    def __init__(self, problems: list[str], total: int):
        self.problems = problems
        self.total = total
        more = f" (and {total - 1} more bad row(s))" if total > 1 else ""
        super().__init__(f"{problems[0]}{more}; fix them, or pass --skip-bad to leave them out")


@dataclass
class BadRows:
    """The bad rows seen so far, the first MAX_LISTED kept for the message; `skip`: --skip-bad."""

    skip: bool
    listed: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, where: str, why: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(_printable(f"{where}: {why}"))

    def check(self) -> None:
        """Stop the import when a row was bad and --skip-bad was not given."""
        if self.count and not self.skip:
            raise BadRowsError(self.listed, self.count)
