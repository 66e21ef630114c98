"""Sound as numpy arrays: 48 kHz stereo float32, decoded and written with the ffmpeg binary
previz encodes with. Shared by the generators (a take's sound), publishing and assembly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from previz.errors import PrevizError
from previz.media.encode import ffmpeg_exe

__all__ = ["RATE", "CHANNELS", "decode_audio", "write_wav", "silence", "resampled"]

RATE = 48000
CHANNELS = 2


def silence(samples: int) -> np.ndarray:
    return np.zeros((samples, CHANNELS), dtype=np.float32)


def decode_audio(path: Path, limit: int | None = None) -> np.ndarray:
    """The file's first audio stream as float32 48 kHz stereo (any rate and layout is
    resampled), at most `limit` samples."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
               "-map", "0:a:0", "-ac", str(CHANNELS), "-ar", str(RATE), "-f", "f32le", "-"]
    done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise PrevizError(f"{path.name}: could not be decoded "
                          f"({done.stderr.decode(errors='replace').strip()[-200:]})")
    samples = np.frombuffer(done.stdout, dtype=np.float32).reshape(-1, CHANNELS)
    return samples if limit is None else samples[:limit]


def write_wav(samples: np.ndarray, path: Path) -> Path:
    """48 kHz stereo 24-bit PCM WAV (clipped to full scale)."""
    pcm = np.clip(samples, -1.0, 1.0).astype("<f4")
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "f32le",
               "-ar", str(RATE), "-ac", str(CHANNELS), "-i", "-", "-c:a", "pcm_s24le", str(path)]
    done = subprocess.run(command, input=pcm.tobytes(), capture_output=True)
    if done.returncode != 0:
        raise PrevizError(f"could not write {path.name} "
                          f"({done.stderr.decode(errors='replace').strip()[-200:]})")
    return path


def resampled(samples: np.ndarray, rate: int) -> np.ndarray:
    """(n, channels) or (channels, n) float samples at `rate`, as 48 kHz stereo (ffmpeg's
    resampler; mono is spread to both sides)."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] < data.shape[1]:  # (channels, n)
        data = data.T
    channels = data.shape[1]
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-f", "f32le", "-ar",
               str(int(rate)), "-ac", str(channels), "-i", "-", "-ac", str(CHANNELS), "-ar",
               str(RATE), "-f", "f32le", "-"]
    done = subprocess.run(command, input=np.ascontiguousarray(data).tobytes(),
                          capture_output=True)
    if done.returncode != 0:
        raise PrevizError(f"could not resample sound from {rate} Hz "
                          f"({done.stderr.decode(errors='replace').strip()[-200:]})")
    return np.frombuffer(done.stdout, dtype=np.float32).reshape(-1, CHANNELS).copy()
