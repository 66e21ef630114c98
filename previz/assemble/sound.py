"""The cut's sound: every shot's sound at its record-in, sample-exact, with the audio bed under it.

Shot *s* sounds from sample round(record_in · 48000 / fps) to round(record_out · 48000 / fps),
computed with exact fractions, so its first sample is within half a sample of its first
frame's time at every rate (23.976 and 29.97 included) and nothing drifts along the cut.

- at a straight cut one shot's sound ends where the next one's begins;
- under a dissolve the outgoing shot's sound fades out across the dissolve, and the incoming
  one starts whole at its record-in (a line's first word is not lost under the picture's mix);
- a fade from black fades the shot's sound in, a fade out fades it out, as the picture does;
- the bed is laid under everything; the mix is measured with ffmpeg's `loudnorm` (EBU R128) and
  brought to -23 LUFS by one gain (a limiter would move sound in time), lowered further if its
  true peak would pass -1 dBTP.

Written by hand because no library places clips on a sample grid from frame numbers; numpy
does the arithmetic, ffmpeg decodes, measures and writes.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from previz.assemble.ffmpeg import AUDIO_RATE
from previz.media.audio import CHANNELS, decode_audio, write_wav
from previz.media.encode import ffmpeg_exe
from previz.plan.types import RenderPlan

__all__ = ["SoundMix", "mix_sound", "sample_of", "TARGET_LUFS", "PEAK_DBTP"]

TARGET_LUFS = -23.0
PEAK_DBTP = -1.0


@dataclass(frozen=True)
class SoundMix:
    path: Path  # the mix, 48 kHz stereo WAV, exactly the cut's length
    shots: dict[str, Path]  # shot id -> its own sound as placed (for the editor's relink)
    samples: int
    loudness: float | None  # integrated loudness of the mix before the gain (LUFS)
    gain_db: float


def sample_of(frame: int, fps: Fraction) -> int:
    """The 48 kHz sample at which cut frame `frame` begins."""
    return round(Fraction(frame) * AUDIO_RATE / Fraction(fps))


def mix_sound(plan: RenderPlan, folder: Path, name: str, media_names: dict[str, str],
              take_sounds: dict[str, Path] | None = None) -> SoundMix | None:
    """The cut's mix, and each shot's sound as its own WAV named like its media; None when no
    shot has sound (the bed alone, if any, is laid under the cut as it is). A shot's sound is
    its audio file, else its take's own (`take_sounds`, by shot id).

    1. each shot's sound decoded at 48 kHz stereo and cut to the shot;
    2. placed at its record-in, with the fades above;
    3. the bed under it;
    4. measured (EBU R128) and brought to -23 LUFS by one gain;
    5. written: the mix, and each shot's placed sound.
    """
    fps = plan.fps_fraction
    sources = {**(take_sounds or {}), **{s.id: Path(s.audio) for s in plan.shots if s.audio}}
    sounding = [shot for shot in plan.shots if shot.id in sources]
    if not sounding and not (plan.audio and plan.ducking):
        return None
    total = sample_of(plan.frames, fps)
    mix = np.zeros((total, CHANNELS), dtype=np.float32)
    placed: dict[str, np.ndarray] = {}
    following = {shot.id: plan.shots[i + 1] if i + 1 < len(plan.shots) else None
                 for i, shot in enumerate(plan.shots)}
    for shot in sounding:
        # 1. the shot's sound
        start, end = sample_of(shot.record_in, fps), sample_of(shot.record_out, fps)
        sound = np.zeros((end - start, CHANNELS), dtype=np.float32)
        decoded = decode_audio(sources[shot.id], end - start)
        sound[:len(decoded)] = decoded
        # 2. the fades
        if shot.transition.type == "fade_from_black" and shot.transition.frames:
            _ramp(sound, 0, sample_of(shot.transition.frames, fps), up=True)
        after = following[shot.id]
        if after is not None and after.transition.type == "dissolve":
            fade = sample_of(after.transition.frames, fps)
            _ramp(sound, len(sound) - fade, len(sound), up=False)
        if shot.fade_out:
            _ramp(sound, len(sound) - sample_of(shot.fade_out, fps), len(sound), up=False)
        mix[start:end] += sound
        placed[shot.id] = sound
    # 3. the bed, dipped under the shots with dialogue when the storyboard asks
    if plan.audio:
        bed = decode_audio(Path(plan.audio), total).copy()
        if plan.ducking:
            bed *= _ducking(plan, len(bed))[:, None]
        mix[:len(bed)] += bed
    # 4. loudness
    path = folder / f"{name}_audio.wav"
    loudness, peak = _measure(mix)
    gain_db = 0.0 if loudness is None else TARGET_LUFS - loudness
    if peak is not None and peak + gain_db > PEAK_DBTP:
        gain_db = PEAK_DBTP - peak
    # 5. the files
    gain = np.float32(10 ** (gain_db / 20))
    write_wav(mix * gain, path)
    shots = {}
    for shot_id, sound in placed.items():
        shots[shot_id] = folder / f"{Path(media_names[shot_id]).stem}.wav"
        write_wav(sound * gain, shots[shot_id])
    return SoundMix(path, shots, total, loudness, gain_db)


DUCK_RAMP_SECONDS = 0.2


def _ducking(plan: RenderPlan, samples: int) -> np.ndarray:
    """The bed's gain along the cut: `plan.ducking` dB down over each shot with dialogue,
    reached over a fifth of a second either side (at the shot's edges, not mid-line)."""
    fps = plan.fps_fraction
    low = np.float32(10 ** (-plan.ducking / 20))
    gain = np.ones(samples, dtype=np.float32)
    ramp = round(DUCK_RAMP_SECONDS * AUDIO_RATE)
    for shot in plan.shots:
        if not shot.dialogue:
            continue
        start, end = sample_of(shot.record_in, fps), min(samples, sample_of(shot.record_out, fps))
        gain[start:end] = np.minimum(gain[start:end], low)
        for edge, direction in ((start, -1), (end, 1)):  # back up to full level outside it
            span = np.arange(1, ramp + 1)
            where = edge - span if direction < 0 else edge + span - 1
            keep = (where >= 0) & (where < samples)
            level = low + (1 - low) * span[keep] / ramp
            gain[where[keep]] = np.minimum(gain[where[keep]], level.astype(np.float32))
    return gain


def _ramp(sound: np.ndarray, start: int, end: int, *, up: bool) -> None:
    start, end = max(0, start), min(len(sound), end)
    if end <= start:
        return
    # sample k of an n-sample ramp at (k + 1/2) / n: the same rule as the picture's fades
    ramp = (np.arange(end - start, dtype=np.float32) + 0.5) / (end - start)
    sound[start:end] *= (ramp if up else ramp[::-1])[:, None]


def _measure(samples: np.ndarray) -> tuple[float | None, float | None]:
    """(integrated loudness in LUFS, true peak in dBTP) of 48 kHz stereo samples, by ffmpeg's
    loudnorm (fed on its stdin: nothing is written to measure it); None for silence."""
    command = [ffmpeg_exe(), "-hide_banner", "-f", "f32le", "-ar", str(AUDIO_RATE), "-ac",
               str(CHANNELS), "-i", "-", "-af", "loudnorm=print_format=json", "-f", "null", "-"]
    done = subprocess.run(command, input=np.ascontiguousarray(samples, dtype="<f4").tobytes(),
                          capture_output=True)
    found = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", done.stderr.decode(errors="replace"))
    if not found:
        return None, None
    figures = json.loads(found.group(0))

    def number(key: str) -> float | None:
        try:
            value = float(figures[key])
        except (KeyError, ValueError):
            return None
        return value if np.isfinite(value) else None

    return number("input_i"), number("input_tp")
