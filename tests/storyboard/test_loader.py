"""Every kind of bad storyboard gets a located, actionable message (exit code 2 at the CLI)."""

import os
import time
from fractions import Fraction

import numpy as np
import pytest
from audio_support import write_tone
from PIL import Image
from storyboard_text import BASE

from previz.errors import InvalidInput
from previz.storyboard import load_storyboard


def problems(path) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        load_storyboard(path)
    return [str(p) for p in caught.value.problems]


def only_problem(path) -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def test_valid_storyboard_loads_with_positions(write_board):
    board = load_storyboard(write_board())
    assert [s.id for s in board.shots] == ["SH0010", "SH0020"]
    assert board.locate(("shots", 1, "prompt")) == (17, 5)
    assert board.characters["KEEPER"].reference == ["refs/keeper.png"]
    assert len(board.file("refs/keeper.png").sha256) == 64


def test_broken_yaml_is_located(write_board):
    message = only_problem(write_board(BASE + "  - id: [unclosed\n"))
    assert "board.yaml:" in message and "invalid YAML" in message


def test_top_level_must_be_a_mapping(write_board):
    assert "not a mapping" in only_problem(write_board("- just\n- a list\n"))
    assert "empty" in only_problem(write_board(""))


def test_unknown_key_suggests_the_right_one(write_board):
    message = only_problem(write_board(BASE.replace("    prompt: \"the lamp", "    promt: \"the lamp")
                                       .replace("    duration: 3s\n", "    duration: 3s\n    prompt: x\n")))
    assert ":18:5: shots[1]: unknown field 'promt' — did you mean 'prompt'?" in message


def test_unknown_top_level_key_lists_nearest(write_board):
    message = only_problem(write_board(BASE.replace("fps: 24", "fsp: 24")))
    assert ":3:1: storyboard: unknown field 'fsp' — did you mean 'fps'?" in message


def test_every_problem_reported_at_once(write_board):
    text = BASE.replace("duration: 4s", "duration: -4s").replace("duration: 3s", "duration: soon")
    found = problems(write_board(text))
    assert len(found) == 2
    assert "shots[0].duration: '-4s' is not a duration" in found[0]
    assert "shots[1].duration: 'soon' is not a duration" in found[1]


def test_wrong_types(write_board):
    message = only_problem(write_board(BASE.replace("fps: 24", "fps: fast")))
    assert "fps: 'fast' is not a supported rate" in message and "23.976" in message
    message = only_problem(write_board(BASE.replace("  - id: SH0020\n", "  - id: SH0020\n    takes: many\n")))
    assert "shots[1].takes: 'many' is not valid" in message


def test_duplicate_shot_ids(write_board):
    message = only_problem(write_board(BASE.replace("SH0020", "SH0010")))
    assert ":15:5: shots[1].id: 'SH0010' is already the id of shots[0]" in message


@pytest.mark.parametrize("bad_id", ["SH 0010", "SH/0010", "../etc", "x" * 65, "''"])
def test_ids_must_match_the_strict_pattern(write_board, bad_id):
    message = only_problem(write_board(BASE.replace("id: SH0020", f"id: {bad_id}")))
    assert "shots[1].id" in message and "not a valid id" in message


@pytest.mark.parametrize("duration,expect", [
    ("0s", "not positive"), ("0f", "not positive"), ("-2", "not a duration"),
    ("601s", "longer than 10 minutes"), ("14401f", "longer than 10 minutes"), ("4.5f", "fractional"),
])
def test_absurd_durations(write_board, duration, expect):
    assert expect in only_problem(write_board(BASE.replace("duration: 3s", f"duration: {duration}")))


def test_unknown_name_in_prompt(write_board):
    message = only_problem(write_board(BASE.replace("{LAMP_ROOM}", "{LAMP_RUM}")))
    assert "{LAMP_RUM} names no character or location — did you mean 'LAMP_ROOM'?" in message


@pytest.mark.parametrize("target,expect", [
    ("SH0099", "no shot has id 'SH0099'"),
    ("SH0020", "cannot continue itself"),
])
def test_continue_must_point_at_another_shot(write_board, target, expect):
    text = BASE.replace("    prompt: \"the lamp turns\"", f"    prompt: x\n    continue: {target}")
    assert expect in only_problem(write_board(text))


def test_continue_cycle(write_board):
    text = BASE.replace("    prompt: \"{KEEPER} climbs into {LAMP_ROOM}\"",
                        "    prompt: a\n    continue: SH0020").replace(
        "    prompt: \"the lamp turns\"", "    prompt: b\n    continue: SH0010")
    assert "loop (SH0010 -> SH0020 -> SH0010)" in only_problem(write_board(text))


def test_select_outside_takes(write_board):
    text = BASE.replace("    duration: 3s\n", "    duration: 3s\n    takes: 2\n    select: 3\n")
    assert "take 3 does not exist — the shot has 2 take(s)" in only_problem(write_board(text))


def test_transition_longer_than_shot(write_board):
    text = BASE.replace("    duration: 3s\n", "    duration: 3s\n    transition: {type: dissolve, duration: 80f}\n")
    assert "80-frame dissolve is longer than" in only_problem(write_board(text))


def test_dissolve_into_first_shot(write_board):
    text = BASE.replace("    duration: 4s\n", "    duration: 4s\n    transition: {type: dissolve, duration: 8f}\n")
    assert "nothing to dissolve from" in only_problem(write_board(text))


@pytest.mark.parametrize("first,second,expect", [
    ("    fade_out: 5s\n", "", "shots[0].fade_out: SH0010 is 96 frames, shorter than a 120-frame "
                             "fade out"),
    ("", "    transition: {type: fade_from_black, duration: 40f}\n    fade_out: 40f\n",
     "shots[1].fade_out: SH0020 is 72 frames, shorter than its fade_from_black in (40f) and "
     "fade out (40f)"),
    ("    fade_out: 12f\n", "    transition: {type: dissolve, duration: 8f}\n",
     "shots[0].fade_out: SH0020 dissolves from SH0010, which fades to black"),
])
def test_a_fade_out_that_cannot_be(write_board, first, second, expect):
    text = BASE.replace("    duration: 4s\n", "    duration: 4s\n" + first).replace(
        "    duration: 3s\n", "    duration: 3s\n" + second)
    assert expect in only_problem(write_board(text))


def test_missing_file(write_board):
    message = only_problem(write_board(BASE.replace("refs/keeper.png", "refs/keepr.png")))
    assert "characters.KEEPER.reference[0]: 'refs/keepr.png' does not exist" in message


@pytest.mark.parametrize("path,expect", [
    ("/etc/hostname", "absolute path"), ("../outside.png", "uses '..'"),
    ("refs/../../outside.png", "uses '..'"),
])
def test_paths_that_leave_the_folder(write_board, path, expect):
    assert expect in only_problem(write_board(BASE.replace("refs/keeper.png", path)))


def test_symlink_escape(write_board, board_dir, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    os.symlink(outside, board_dir / "refs" / "link.png")
    message = only_problem(write_board(BASE.replace("refs/keeper.png", "refs/link.png")))
    assert "symlink that leads outside" in message


def test_undecodable_image(write_board, board_dir):
    (board_dir / "refs" / "fake.png").write_bytes(b"\x89PNG not really")
    message = only_problem(write_board(BASE.replace("refs/keeper.png", "refs/fake.png")))
    assert "not a decodable image" in message


def test_image_over_50_megapixels(write_board, board_dir):
    # A 1-bit PNG of 8000x7000 (56 MP) is tiny on disk: the pixel cap must still refuse it.
    Image.new("1", (8000, 7000)).save(board_dir / "refs" / "huge.png", optimize=True)
    message = only_problem(write_board(BASE.replace("refs/keeper.png", "refs/huge.png")))
    assert "over the 50 megapixel limit" in message


def test_file_over_5_megabytes(write_board, board_dir):
    (board_dir / "refs" / "big.png").write_bytes(os.urandom(5 * 2**20 + 1))
    message = only_problem(write_board(BASE.replace("refs/keeper.png", "refs/big.png")))
    assert "over the 5 MB limit" in message


def test_storyboard_over_5_megabytes(write_board):
    message = only_problem(write_board(BASE + "#" * (5 * 2**20)))
    assert "over the 5 MB limit" in message


def test_more_than_5000_shots(write_board):
    shots = "".join(f"  - {{id: S{i}, duration: 1f, prompt: x}}\n" for i in range(5001))
    text = BASE.split("shots:")[0] + "shots:\n" + shots
    assert "5001 items is more than the 5000 allowed" in only_problem(write_board(text))


def test_alias_bomb_refused_quickly(write_board):
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for level in "bcdefghi":
        prev = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
    started = time.perf_counter()
    message = only_problem(write_board(bomb + BASE))
    assert "alias bomb" in message
    assert time.perf_counter() - started < 5  # a guard against hanging, not a benchmark


def test_anchors_and_merge_keys_work(write_board):
    text = BASE.replace("shots:\n", "x-cam: &cam {move: dolly_in, size: wide}\nshots:\n")
    assert "unknown field 'x-cam'" in only_problem(write_board(text))
    text = BASE.replace("    prompt: \"the lamp turns\"",
                        "    prompt: \"the lamp turns\"\n    camera: &cam {move: pan_left}\n"
                        "  - {id: SH0030, duration: 1s, prompt: y, camera: *cam}")
    board = load_storyboard(write_board(text))
    assert board.shots[2].camera.move.value == "pan_left"


def test_object_tags_are_refused(write_board):
    message = only_problem(write_board(BASE + "evil: !!python/object/apply:os.system ['true']\n"))
    assert "object tags are not allowed" in message


def test_duplicate_yaml_keys(write_board):
    message = only_problem(write_board(BASE.replace("fps: 24", "fps: 24\nfps: 25")))
    assert "duplicate key 'fps'" in message


def with_audio(name: str) -> str:
    return BASE.replace("fps: 24\n", f"fps: 24\naudio: sounds/{name}\n")


def test_audio_bed_that_decodes_loads(write_board, board_dir):
    (board_dir / "sounds").mkdir()
    write_tone(board_dir / "sounds" / "bed.wav", 1.5)
    board = load_storyboard(write_board(with_audio("bed.wav")))
    assert board.audio == "sounds/bed.wav"
    assert len(board.file("sounds/bed.wav").sha256) == 64


def _text_as_wav(path):
    path.write_text("this is a text file, not a recording\n" * 20)


def _garbage_wav(path):
    path.write_bytes(b"RIFF" + os.urandom(4000))


def _truncated_wav(path):
    write_tone(path, 1.0)
    path.write_bytes(path.read_bytes()[:30])  # cut inside the header


def _silent_wav(path):
    write_tone(path, 0.0)  # a header and no samples


def _video_without_sound(path):
    from previz.media.encode import encode_take

    video = path.with_suffix(".mp4")
    encode_take(np.zeros((6, 32, 48, 3), np.uint8), Fraction(24), video, width=48, height=32)
    video.rename(path)


def _wrong_suffix(path):
    write_tone(path, 1.0)


@pytest.mark.parametrize("name, make, expect", [
    ("notes.wav", _text_as_wav, "is not a decodable audio file"),
    ("noise.wav", _garbage_wav, "is not a decodable audio file"),
    ("cut_short.wav", _truncated_wav, "is not a decodable audio file"),
    ("silence.wav", _silent_wav, "holds no sound"),
    ("picture.m4a", _video_without_sound, "has no audio stream"),
    ("bed.txt", _wrong_suffix, "is not an audio file"),
])
def test_audio_bed_that_does_not_decode_is_located(write_board, board_dir, name, make, expect):
    (board_dir / "sounds").mkdir()
    make(board_dir / "sounds" / name)
    started = time.perf_counter()
    message = only_problem(write_board(with_audio(name)))
    assert time.perf_counter() - started < 5  # a probe, not a decode of the whole file
    assert f"board.yaml:4:1: audio: 'sounds/{name}' {expect}" in message
    assert " — " in message  # says the fix
    detail = message.split(":4:1: ", 1)[1]
    assert str(board_dir) not in detail  # names the storyboard's value, not a resolved path


def test_audio_bed_over_the_size_limit(write_board, board_dir, monkeypatch):
    from previz.storyboard import checks

    (board_dir / "sounds").mkdir()
    write_tone(board_dir / "sounds" / "long.wav", 15.0)  # 1.3 MB
    monkeypatch.setattr(checks, "MAX_AUDIO_BYTES", 2**20)
    message = only_problem(write_board(with_audio("long.wav")))
    assert "board.yaml:4:1: audio: 'sounds/long.wav' is 1.3 MB, over the 1 MB limit" in message
