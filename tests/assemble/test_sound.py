"""The cut's sound: each shot's sound file at its record-in, sample-exact at every rate and
through dissolves; resampled, cut at the shot's end; per-shot WAVs and OTIO tracks beside the
picture; loudness to EBU R128."""

from __future__ import annotations

import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
from assemble_support import decode_audio
from conftest import make_plan, write_takes

from previz.assemble import AssembleOptions, cut_from_takes
from previz.assemble.sound import TARGET_LUFS, _measure, sample_of
from previz.media.audio import decode_audio as decode_wav
from previz.media.encode import ffmpeg_exe

LAYOUT = [(30, None), (24, "dissolve 6"), (30, None), (20, "dissolve 8")]
CLICK_SAMPLES = 96  # 2 ms


def _sound(path: Path, seconds: float, rate: int = 48000, channels: int = 1,
           click: bool = True, tone: float = 0.0) -> Path:
    """A WAV: a 2 ms full-scale burst at its first sample (the click), optionally a quiet
    tone after it, silence otherwise."""
    count = round(seconds * rate)
    samples = np.zeros(count)
    if tone:
        samples += tone * np.sin(np.arange(count) * 2 * np.pi * 440 / rate)
    if click:
        burst = round(CLICK_SAMPLES * rate / 48000)
        samples[:burst] = 0.9 * np.sign(np.sin(np.arange(burst) * 2 * np.pi * 3000 / rate) +
                                         1e-9)
    data = (np.repeat(samples[:, None], channels, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data.tobytes())
    return path


def _wav(path: Path) -> np.ndarray:
    return decode_wav(path)[:, 0]


def _onsets(samples: np.ndarray, expected: list[int], reach: int = 2400) -> list[int]:
    """For each expected sample, where the sound first passes half the click's level near it
    (the mix's gain sets that level)."""
    found = []
    for at in expected:
        window = np.abs(samples[max(0, at - reach):at + reach])
        loud = np.flatnonzero(window > 0.5 * window.max(initial=0)) if window.max(
            initial=0) > 0.05 else np.array([])
        assert loud.size, f"no click near sample {at}"
        found.append(max(0, at - reach) + int(loud[0]))
    return found


@pytest.mark.parametrize("fps", ["23.976", "24", "25", "29.97", "30"])
def test_every_shots_click_is_at_its_record_in(fps, tmp_path):
    """A click on every shot's first sample, found in the cut (its AAC, decoded) within one
    millisecond of the shot's record-in, through dissolves; one file at 44.1 kHz stereo."""
    sounds = {i: _sound(tmp_path / f"s{i}.wav", 3.0, rate=44100 if i == 1 else 48000,
                        channels=2 if i == 1 else 1) for i in range(len(LAYOUT))}
    plan = make_plan(tmp_path, LAYOUT, fps=fps, size=(128, 72), sounds=sounds)
    cut = cut_from_takes(plan, write_takes(plan, tmp_path / "takes"), tmp_path / "out",
                         options=AssembleOptions(review=False))
    rate = Fraction(plan.fps_exact)
    expected = [sample_of(shot.record_in, rate) for shot in plan.shots]
    heard = _onsets(decode_audio(cut.media), expected)
    assert all(abs(h - e) <= 48 for h, e in zip(heard, expected, strict=True)), (heard, expected)
    # and in the mix itself, to the sample
    mix = _wav(cut.folder / f"{cut.name}_audio.wav")
    assert len(mix) == sample_of(plan.frames, rate)
    assert _onsets(mix, expected) == expected


def test_sound_is_cut_at_the_shot_end_faded_under_dissolves_and_relinkable(tmp_path):
    long_tone = _sound(tmp_path / "long.wav", 4.0, click=False, tone=0.3)
    plan = make_plan(tmp_path, [(24, None), (24, "dissolve 12"), (24, None)], size=(128, 72),
                     sounds={0: long_tone, 2: _sound(tmp_path / "c.wav", 1.0)})
    assert any("its sound is cut at the shot's end" in w for w in plan.warnings)
    cut = cut_from_takes(plan, write_takes(plan, tmp_path / "takes"), tmp_path / "out",
                         options=AssembleOptions(review=False))
    mix = _wav(cut.folder / f"{cut.name}_audio.wav")
    second = sample_of(24, Fraction(24))  # shot 2 dissolves in at frame 12, shot 1 ends at 24
    dissolve_in = sample_of(12, Fraction(24))
    level = np.abs(mix[:dissolve_in]).max()
    assert level > 0.05  # the tone, at its normalised level
    # under the dissolve the outgoing tone fades out, and nothing of it is left after its end
    assert np.abs(mix[dissolve_in + 100:dissolve_in + 600]).max() > \
        np.abs(mix[second - 600:second - 100]).max()
    assert np.abs(mix[second:second + 4800]).max() < 1e-4
    # each shot's own sound beside its media, and in the OTIO at the picture's position
    assert (cut.folder / "SH0010_t1.wav").is_file() and (cut.folder / "SH0030_t1.wav").is_file()
    # ... and so in the EDL (audio events) and the FCP 7 XML, read back with OTIO's adapters
    for path, options in ((cut.otio, {}), (cut.edl, {"rate": 24}), (cut.xml, {})):
        timeline = otio.adapters.read_from_file(str(path), **options)
        clips = {c.name: c.range_in_parent().start_time.value
                 for track in timeline.audio_tracks() for c in track.find_clips()}
        assert clips == {"SH0010_t1.wav": 0, "SH0030_t1.wav": 36}, path.suffix
    assert "SH0030_t1.wav" in cut.files and f"{cut.name}_audio.wav" in cut.files


def test_the_mix_is_brought_to_ebu_r128(tmp_path):
    quiet = _sound(tmp_path / "quiet.wav", 3.0, click=False, tone=0.02)
    plan = make_plan(tmp_path, [(72, None)], size=(128, 72), sounds={0: quiet})
    cut = cut_from_takes(plan, write_takes(plan, tmp_path / "takes"), tmp_path / "out",
                         options=AssembleOptions(review=False))
    loudness, _ = _measure(decode_wav(cut.folder / f"{cut.name}_audio.wav"))
    assert loudness == pytest.approx(TARGET_LUFS, abs=0.5)


def test_the_bed_dips_under_dialogue_when_asked(tmp_path):
    _sound(tmp_path / "bed.wav", 4.0, click=False, tone=0.1)
    board = tmp_path / "board.yaml"
    board.write_text("project: P\nsequence: S\nfps: 24\nresolution: 128x72\naudio: bed.wav\n"
                     "ducking: 12\ncharacters: {KEEPER: {description: k}}\n"
                     "defaults: {model: draft}\nshots:\n- {id: SH0010, duration: 1s, prompt: a}\n"
                     "- {id: SH0020, duration: 1s, prompt: b, dialogue: ['KEEPER: hush']}\n"
                     "- {id: SH0030, duration: 1s, prompt: c}\n")
    from previz.plan import plan_from_storyboard
    from previz.storyboard import load_storyboard

    plan = plan_from_storyboard(load_storyboard(board))
    cut = cut_from_takes(plan, write_takes(plan, tmp_path / "takes"), tmp_path / "out",
                         options=AssembleOptions(review=False))
    mix = _wav(cut.folder / f"{cut.name}_audio.wav")

    def level(second: float) -> float:  # RMS over the middle half of that second
        start = round((second + 0.25) * 48000)
        return float(np.sqrt((mix[start:start + 24000] ** 2).mean()))

    assert level(1) / level(0) == pytest.approx(10 ** (-12 / 20), rel=0.05)
    assert level(2) == pytest.approx(level(0), rel=0.05)


@pytest.mark.parametrize(("audio", "says"), [
    ("silent", "is silent — give the shot's sound, or write audio: none"),
    ("picture", "has no audio stream"),
    ("missing", "does not exist"),
])
def test_bad_shot_sound_files_are_located(audio, says, tmp_path):
    from previz.errors import InvalidInput
    from previz.storyboard import load_storyboard

    if audio == "silent":
        _sound(tmp_path / "s.wav", 1.0, click=False)
    elif audio == "picture":
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                        "color=c=black:s=32x32:d=1", str(tmp_path / "s.mp4")], check=True)
        (tmp_path / "s.mp4").rename(tmp_path / "s.m4a")
    name = "s.m4a" if audio == "picture" else "s.wav"
    board = tmp_path / "board.yaml"
    board.write_text("project: P\nsequence: S\ncharacters: {KEEPER: {description: k}}\n"
                     "shots:\n- id: SH0010\n  duration: 1s\n  prompt: x\n"
                     f"  audio: {name}\n  dialogue: ['KEEPER: hello']\n")
    with pytest.raises(InvalidInput) as refused:
        load_storyboard(board)
    assert f"board.yaml:8:3: shots[0].audio: '{name}' {says}" in str(refused.value)


def test_dialogue_names_a_character(tmp_path):
    from previz.errors import InvalidInput
    from previz.storyboard import load_storyboard

    board = tmp_path / "board.yaml"
    board.write_text("project: P\nsequence: S\ncharacters: {KEEPER: {description: k}}\n"
                     "shots:\n- id: SH0010\n  duration: 1s\n  prompt: x\n  dialogue:\n"
                     "  - KEEPER: Not tonight.\n  - KEPER: Go home.\n")
    with pytest.raises(InvalidInput) as refused:
        load_storyboard(board)
    assert "board.yaml:10:5: shots[0].dialogue[1]: 'KEPER' is not a character of the " \
        "storyboard — did you mean 'KEEPER'" in str(refused.value)


@pytest.mark.slow
def test_a_draft_render_voices_its_dialogue_in_the_cut(tmp_path):
    """Through `previz render`: the draft's takes carry their temp track (a silent take says
    so), and the cut's mix has each line where its shot is."""
    from command_support import render_json

    from previz.store import open_store, read_take_record

    board = tmp_path / "board.yaml"
    board.write_text(
        "project: TEST\nsequence: SQ010\nfps: 24\nresolution: 128x72\n"
        "characters: {KEEPER: {description: an old keeper}}\nshots:\n"
        "- {id: SH0010, duration: 3s, prompt: a, dialogue: ['KEEPER: Not tonight.']}\n"
        "- {id: SH0020, duration: 2s, prompt: b, audio: none, dialogue: ['KEEPER: Shh.']}\n"
        "- {id: SH0030, duration: 2s, prompt: c, transition: {type: dissolve, duration: 12f},"
        " dialogue: ['KEEPER: Go home.']}\n")
    summary = render_json(board, tmp_path / "store")
    store = open_store(str(tmp_path / "store"))
    records = {s["id"]: read_take_record(store, s["take"]) for s in summary["shots"]}
    assert records["SH0010"]["sound"]["name"] == "take.wav"
    assert records["SH0010"]["voice"]["lines_fitted"] == 1
    assert records["SH0020"]["sound"] == {"silent": True}  # audio: none
    folder = tmp_path / "store" / "TEST" / "SQ010" / summary["version"]
    mix = _wav(folder / f"SQ010_previz_{summary['version']}_audio.wav")
    rate = Fraction(24)
    lead = round(0.2 * 48000)

    def loud(start: int, end: int) -> float:
        return float(np.abs(mix[start:end]).max(initial=0))

    first_in, second_in, third_in = (sample_of(f, rate) for f in (0, 72, 108))
    assert loud(first_in, first_in + lead) < 1e-3 < loud(first_in + lead, second_in)
    assert loud(second_in + 100, third_in) < 1e-3  # SH0020 is silent until SH0030 comes in
    assert loud(third_in + lead, len(mix)) > 1e-2
    assert "KEEPER: “Not tonight.”" in (folder / "review.html").read_text()
