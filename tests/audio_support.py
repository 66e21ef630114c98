"""A test audio bed, shared by the storyboard and assembly tests (a module, so both import it)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

TONE_AMPLITUDE = 8000  # of 32767: a 440 Hz tone at about -12 dBFS


def write_tone(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A mono 16-bit WAV of a 440 Hz tone: an audio bed whose every sample sounds."""
    samples = np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate) * TONE_AMPLITUDE
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.astype("<i2").tobytes())
    return path
