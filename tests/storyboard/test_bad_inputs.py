"""Inputs found to crash or slip through, each refused with a located message (exit 2, no
traceback) — and the classes they belong to, tried by property-based tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storyboard_text import BASE

from previz import cli
from previz.errors import InvalidInput
from previz.plan import plan_from_storyboard
from previz.storyboard import load_storyboard

LOCATED = re.compile(r"^(?P<file>.+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")
SECOND_PROMPT = BASE.splitlines().index('    prompt: "the lamp turns"') + 1  # its line


def validate(capsys, *paths: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["validate", *map(str, paths)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def refused(capsys, path: Path) -> tuple[int, int, str]:
    """(line, column, message) of the one problem `previz validate` reports."""
    code, _, err = validate(capsys, path)
    assert code == 2, err
    lines = [LOCATED.match(line) for line in err.splitlines() if line.startswith(str(path))]
    assert len(lines) == 1 and lines[0], err
    return int(lines[0]["line"]), int(lines[0]["col"]), lines[0]["message"]


def test_a_nul_byte_is_refused_where_it_is(write_board, capsys):
    path = write_board(BASE.replace('"the lamp turns"', '"the lamp\x00 turns"'))
    line, column, message = refused(capsys, path)
    assert (line, column) == (SECOND_PROMPT, len('    prompt: "the lamp') + 1)
    assert "U+0000 is not allowed" in message


def test_two_thousand_brackets_are_refused_where_they_go_too_deep(write_board, capsys):
    path = write_board(BASE + "notes: " + "[" * 2000 + "]" * 2000 + "\n")
    line, column, message = refused(capsys, path)
    # on the notes line, at a bracket some sixty levels in (the file's own mapping is one)
    assert line == len(BASE.splitlines()) + 1 and len("notes: ") + 60 < column < 80
    assert "nested more than 64 levels deep" in message


def test_an_unclosed_quote_is_reported_where_it_opens(write_board, capsys):
    path = write_board(BASE.replace('"the lamp turns"', '"the lamp turns'))
    assert refused(capsys, path)[:2] == (SECOND_PROMPT, len("    prompt: ") + 1)


def test_a_megabyte_prompt_is_refused(write_board, capsys):
    path = write_board(BASE.replace('"the lamp turns"', "lamp " * 200_000))
    line, _, message = refused(capsys, path)
    assert line == SECOND_PROMPT and "shots[1].prompt: 999,999 characters is more than the 4,000" in (
        message)


def test_a_size_both_odd_and_too_large_is_told_both(write_board, capsys):
    path = write_board(BASE.replace("fps: 24\n", "fps: 24\nresolution: 99999x99999\n"))
    message = refused(capsys, path)[2]
    assert "has an odd side" in message and "is larger than 7680x4320" in message


def test_schema_errors_and_missing_files_are_reported_together(write_board, capsys):
    path = write_board(BASE.replace("refs/keeper.png", "refs/keepr.png").replace(
        "duration: 3s", "duration: three seconds"))
    code, _, err = validate(capsys, path)
    assert code == 2
    assert "shots[1].duration" in err
    assert "characters.KEEPER.reference[0]: 'refs/keepr.png' does not exist" in err


def test_prompts_the_model_cuts_short_are_noted_per_shot(write_board):
    long_prompt = " ".join(["a lighthouse keeper climbs the stairs"] * 80)  # 480 words
    text = BASE.replace("defaults: {model: draft}", "defaults: {model: ltx-video}").replace(
        '"the lamp turns"', f'"{long_prompt}"')
    plan = plan_from_storyboard(load_storyboard(write_board(text)))
    [note] = [w for w in plan.warnings if "tokens" in w]
    assert note == ("SH0020: its prompt (with the style) is about 624 tokens, and ltx-video "
                    "reads 256 — the model never sees the rest; shorten it")  # 480 words
    # the draft model reads no text encoder: nothing to say
    draft = plan_from_storyboard(load_storyboard(write_board(text.replace(
        "model: ltx-video", "model: draft"))))
    assert not [w for w in draft.warnings if "tokens" in w]


def test_validate_goes_on_past_a_file_that_breaks_it(write_board, board_dir, capsys,
                                                     monkeypatch):
    broken = write_board(BASE, name="a_broken.yaml")
    nul = write_board(BASE.replace("the lamp turns", "the\x00lamp"), name="b_nul.yaml")
    good = write_board(BASE, name="c_good.yaml")
    real = plan_from_storyboard

    def plan_or_bug(board):  # injected: a bug in previz that shows on one file only
        if Path(board.source).name == "a_broken.yaml":
            raise KeyError("injected")
        return real(board)

    monkeypatch.setattr("previz.plan.plan_from_storyboard", plan_or_bug)
    code, out, err = validate(capsys, board_dir)
    assert code == 1  # a bug, not (only) bad input
    assert f"{broken}:1:1: could not be checked (KeyError: 'injected')" in err
    assert f"{nul}:{SECOND_PROMPT}:" in err
    assert f"ok  {good}" in out
    assert "2 of 3 storyboard(s) invalid (1 could not be checked)" in err


# -- the classes, not only the cases ---------------------------------------------------------


def load_text(folder: Path, text: str) -> None:
    """Load must succeed or raise InvalidInput whose every problem is located in the file."""
    path = folder / "board.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_storyboard(path)
    except InvalidInput as error:
        assert error.problems
        for problem in error.problems:
            assert problem.line >= 1 and problem.column >= 1, problem


PROPERTY = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(st.integers(0, len(BASE)), st.characters(codec="utf-8"))
def test_any_character_anywhere_loads_or_is_refused_with_a_place(board_dir, at, character):
    load_text(board_dir, BASE[:at] + character + BASE[at:])


@PROPERTY
@given(st.integers(0, len(BASE)), st.integers(1, len(BASE)))
def test_any_cut_of_the_file_loads_or_is_refused_with_a_place(board_dir, start, length):
    load_text(board_dir, BASE[:start] + BASE[start + length:])


@settings(PROPERTY, max_examples=30)
@given(st.integers(1, 1000), st.sampled_from(["[", "{a: ", "- "]),
       st.sampled_from(["notes", "defaults"]))
def test_any_nesting_loads_or_is_refused_with_a_place(board_dir, depth, opener, field):
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    if opener == "- ":  # block style: indented twice a level, so the file grows as depth²
        nested = "".join("\n" + "  " * (i + 1) + "- " for i in range(min(depth, 400))) + "x"
    else:
        nested = opener * depth + "1" + closer * depth
    load_text(board_dir, BASE + f"{field}: {nested}\n")


@PROPERTY
@given(st.text(min_size=1, max_size=6000))
def test_any_prompt_loads_or_is_refused_with_a_place(board_dir, prompt):
    load_text(board_dir, BASE.replace('"the lamp turns"', json.dumps(prompt)))
