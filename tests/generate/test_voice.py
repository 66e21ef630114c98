"""The draft's temp track: dialogue spoken by espeak-ng when it is installed, else a tone per
line as long as the line would take to say; effects as a quiet noise bed; cut at the shot."""

import shutil

import numpy as np
import pytest

from previz.generate import voice
from previz.generate.voice import LEAD_SECONDS, PAUSE_SECONDS, WORDS_PER_SECOND, temp_track
from previz.media.audio import RATE

LINES = (("KEEPER", "Not tonight."), ("MARA", "The boat is still out there, please"))


def _span(track: np.ndarray, threshold: float = 0.05) -> list[tuple[int, int]]:
    """(start, end) samples of each stretch that sounds."""
    loud = np.abs(track[:, 0]) > threshold
    edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
    bounds = ([0] if loud[0] else []) + list(edges + 1) + ([len(loud)] if loud[-1] else [])
    spans = list(zip(bounds[::2], bounds[1::2], strict=True))
    merged: list[tuple[int, int]] = []
    for start, end in spans:  # a tone's zero crossings are not gaps
        if merged and start - merged[-1][1] < RATE // 20:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def test_tones_stand_in_for_lines_without_a_speech_engine(monkeypatch):
    monkeypatch.setattr(voice.shutil, "which", lambda name: None)
    track, made = temp_track(LINES, None, 6 * RATE, seed=1)
    assert made == {"source": "tones", "lines": 2, "lines_fitted": 2, "effects": None}
    spans = _span(track)
    assert len(spans) == 2
    lengths = [round((len(line.split()) / WORDS_PER_SECOND + 0.2) * RATE) for _, line in LINES]
    first = round(LEAD_SECONDS * RATE)
    second = first + lengths[0] + round(PAUSE_SECONDS * RATE)
    for (start, end), at, length in zip(spans, (first, second), lengths, strict=True):
        assert abs(start - at) < RATE // 100 and abs((end - start) - length) < RATE // 50
    # different characters, different pitches
    pitches = [np.argmax(np.abs(np.fft.rfft(track[s:e, 0]))) * RATE / (e - s) for s, e in spans]
    assert abs(pitches[0] - pitches[1]) > 5


def test_what_does_not_fit_is_cut_at_the_shot_and_said(monkeypatch):
    monkeypatch.setattr(voice.shutil, "which", lambda name: None)
    track, made = temp_track(LINES, "wind", RATE * 2, seed=1)
    assert len(track) == 2 * RATE and made["lines_fitted"] == 1
    assert made["effects"] == "noise bed"
    quiet = track[: round(LEAD_SECONDS * RATE) - 10]  # before the first line: the noise bed
    assert 0 < np.abs(quiet).max() <= 0.031


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_speaks_the_lines():
    track, made = temp_track(LINES[:1], None, 3 * RATE, seed=1)
    assert made["source"].startswith("espeak-ng ")
    spans = _span(track, threshold=0.02)
    assert spans and spans[0][0] >= round(LEAD_SECONDS * RATE) - RATE // 50
    assert 0.3 * RATE < spans[-1][1] - spans[0][0] < 2.5 * RATE  # "Not tonight." is short
