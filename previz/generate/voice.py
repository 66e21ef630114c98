"""A temp track for a shot, made on the machine that draws it: its dialogue spoken by a local
text-to-speech engine when one is installed (Debian's `espeak-ng`; never a network service),
otherwise one tone per line, as long as the line would take to say; its effects as a quiet
noise bed. Enough to judge a shot's timing on a laptop; the take record says which was used.

Lines are spoken one after another from a quarter second in, with a short pause between them;
what does not fit in the shot is cut at its end (and the record says how many lines fitted).
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from previz.media.audio import CHANNELS, RATE, decode_audio

__all__ = ["temp_track"]

LEAD_SECONDS = 0.25
PAUSE_SECONDS = 0.3
WORDS_PER_SECOND = 2.6  # conversational speech, for the tones' lengths
LINE_LEVEL = 0.25
EFFECTS_LEVEL = 0.03


def temp_track(dialogue: tuple[tuple[str, str], ...], sound: str | None, samples: int,
               seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(float32 48 kHz stereo of `samples` samples, what the take record says of it)."""
    track = np.zeros((samples, CHANNELS), dtype=np.float32)
    engine = shutil.which("espeak-ng")
    cursor = round(LEAD_SECONDS * RATE)
    fitted = 0
    for character, line in dialogue:
        spoken = _spoken(engine, character, line) if engine else _tone(character, line)
        if cursor >= samples:
            break
        part = spoken[:samples - cursor]
        track[cursor:cursor + len(part)] += part
        fitted += len(part) == len(spoken)
        cursor += len(spoken) + round(PAUSE_SECONDS * RATE)
    if sound:
        rng = np.random.default_rng(seed)
        noise = np.cumsum(rng.standard_normal((samples, CHANNELS)), axis=0)  # brown: rumble
        noise -= np.convolve(noise[:, 0], np.ones(480) / 480, mode="same")[:, None]
        peak = np.abs(noise).max(initial=0) or 1.0
        track += (EFFECTS_LEVEL * noise / peak).astype(np.float32)
    record = {"source": (_engine_version(engine) if engine else "tones") if dialogue else None,
              "lines": len(dialogue), "lines_fitted": fitted,
              "effects": "noise bed" if sound else None}
    return track, record


def _spoken(engine: str, character: str, line: str) -> np.ndarray:
    """The line said by espeak-ng, each character in a voice of its own (pitch from the name)."""
    pitch = 30 + int(hashlib.sha256(character.encode()).hexdigest(), 16) % 40
    with tempfile.TemporaryDirectory(prefix="previz-voice-") as folder:
        out = Path(folder) / "line.wav"
        subprocess.run([engine, "-v", "en", "-s", "165", "-p", str(pitch), "-w", str(out),
                        "--", line], check=True, capture_output=True, timeout=60)
        spoken = decode_audio(out)
    peak = np.abs(spoken).max(initial=0) or 1.0
    return (LINE_LEVEL * spoken / peak).astype(np.float32)


def _tone(character: str, line: str) -> np.ndarray:
    """A tone as long as the line would take to say, pitched by who says it."""
    words = max(1, len(line.split()))
    count = round((words / WORDS_PER_SECOND + 0.2) * RATE)
    pitch = 220 + int(hashlib.sha256(character.encode()).hexdigest(), 16) % 220
    tone = LINE_LEVEL * np.sin(np.arange(count) * 2 * np.pi * pitch / RATE)
    ramp = min(480, count // 2)
    tone[:ramp] *= np.linspace(0, 1, ramp)
    tone[count - ramp:] *= np.linspace(1, 0, ramp)
    return np.repeat(tone[:, None], CHANNELS, axis=1).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _engine_version(engine: str) -> str:
    done = subprocess.run([engine, "--version"], capture_output=True, text=True, timeout=30)
    words = done.stdout.split()
    return f"espeak-ng {words[3] if len(words) > 3 else ''}".strip()
