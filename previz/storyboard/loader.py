"""Stage 1 entry: storyboard file -> validated `Storyboard`, or every problem at once."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from previz.errors import InvalidInput, Problem
from previz.storyboard.checks import MAX_FILE_BYTES, check_named_files, check_storyboard
from previz.storyboard.errors import messages_from_validation_error
from previz.storyboard.model import Storyboard
from previz.storyboard.yaml_source import YamlProblem, locate, read_yaml, utf8_text

__all__ = ["load_storyboard", "storyboard_from_text"]


def load_storyboard(path: str | Path) -> Storyboard:
    """Read, parse, validate and check a storyboard file.

    1. read the file (it must exist and be at most 5 MB of UTF-8);
    2. parse YAML safely, remembering where each field is written;
    3. validate the language (types, values, unknown fields);
    4. check what spans fields: shot references, names in prompts, timing, files on disk.
    Raises InvalidInput carrying every problem found, each as file:line:col.
    """
    source = Path(path)
    shown = str(path)
    if not source.exists():
        raise InvalidInput(Problem(shown, 1, 1, "no such file — check the path"))
    if source.is_dir():
        raise InvalidInput(Problem(shown, 1, 1, "is a folder — name a storyboard .yaml file"))
    size = source.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InvalidInput(Problem(
            shown, 1, 1,
            f"storyboard is {size / 2**20:.1f} MB, over the {MAX_FILE_BYTES // 2**20} MB limit "
            "— split the sequence into several storyboards",
        ))
    try:
        text = utf8_text(source.read_bytes())
    except YamlProblem as problem:
        raise InvalidInput(Problem(shown, problem.line, problem.column, problem.message)) \
            from None
    return storyboard_from_text(text, shown, folder=source.resolve().parent)


def storyboard_from_text(text: str, source: str, folder: str | Path) -> Storyboard:
    try:
        document = read_yaml(text)
    except YamlProblem as problem:
        raise InvalidInput(Problem(source, problem.line, problem.column, problem.message)) from None
    if not isinstance(document.data, dict):
        kind = "empty" if document.data is None else type(document.data).__name__
        raise InvalidInput(Problem(
            source, 1, 1,
            f"the top level is {kind}, not a mapping — a storyboard starts with fields such as "
            "`project:`, `sequence:` and `shots:`",
        ))

    def located(loc: tuple, message: str) -> Problem:
        line, column = locate(document.positions, loc)
        return Problem(source, line, column, message)

    try:
        board = Storyboard.model_validate(document.data)
    except ValidationError as error:
        # every problem at once: the files it names are checked all the same
        _, file_issues = check_named_files(document.data, folder)
        problems = [located(loc, msg) for loc, msg in
                    [*messages_from_validation_error(error, Storyboard), *file_issues]]
        raise InvalidInput(sorted(problems, key=lambda p: (p.line, p.column))) from None
    board.read_from(source, str(folder), document.positions)
    issues, checked = check_storyboard(board)
    if issues:
        problems = [located(loc, msg) for loc, msg in issues]
        raise InvalidInput(sorted(problems, key=lambda p: (p.line, p.column)))
    board.checked(checked)
    return board

