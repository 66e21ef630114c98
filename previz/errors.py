"""Errors every stage raises, and the exit codes the CLI maps them to.

A message names the field, shows the value and says the fix. Input problems carry a location
(`file:line:col`) and are collected so the user sees all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_INVALID",
    "EXIT_PARTIAL",
    "Problem",
    "PrevizError",
    "InvalidInput",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_PARTIAL = 3


@dataclass(frozen=True)
class Problem:
    """One located problem in an input file."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PrevizError(Exception):
    """A failure previz explains in one line (exit code 1): no traceback for the user."""

    exit_code = EXIT_FAILURE


class InvalidInput(PrevizError):
    """The user's input is wrong (exit code 2). Carries every problem found, not just the first."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, (Problem, str)):
            problems = [problems]
        self.problems: list[Problem | str] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
