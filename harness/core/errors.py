"""Errors the user can fix. The CLI prints them as one line and exits 2, no traceback."""

from __future__ import annotations


class HarnessError(Exception):
    """Bad input or usage: the message says what is wrong and what to do."""

    exit_code = 2


class SuiteError(HarnessError):
    """A suite has problems; each one names its file and line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        first = problems[0] if problems else "invalid suite"
        more = f" (and {len(problems) - 1} more problem(s); run `sft-harness validate`)" if len(problems) > 1 else ""
        super().__init__(first + more)


class MissingPackageError(HarnessError):
    def __init__(self, what: str, pip_command: str):
        super().__init__(f"{what} is not installed: run `{pip_command}`")


class Unsupported(HarnessError):
    """A backend was asked for something it cannot do; the message names what to use instead."""
