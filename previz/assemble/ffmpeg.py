"""The ffmpeg binary, driven for the assembly: decode frame ranges, join by stream copy, mux.

Frames cross as raw RGB; YUV <-> RGB conversion is pinned to BT.709 limited range (how every
take is tagged) so re-encoded frames match the stream-copied ones beside them.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from previz.assemble.types import AssembleError
from previz.media.encode import ffmpeg_exe, pipe_rgb_frames

__all__ = ["run_ffmpeg", "decode_range", "iter_rgb", "concat_list", "AUDIO_RATE",
           "audio_filter", "audio_samples"]

AUDIO_RATE = 48000
_TO_RGB = "scale=in_color_matrix=bt709:in_range=tv:flags=bicubic"


def run_ffmpeg(args: Sequence[str], what: str) -> None:
    """Run ffmpeg with `args`; on failure raise AssembleError with `what` and its log's tail."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    if result.returncode != 0:
        raise AssembleError(f"ffmpeg could not {what}: {_tail(result.stderr)}")


def decode_range(path: Path, fps: Fraction, start: int, count: int, width: int,
                 height: int) -> np.ndarray:
    """Frames [start, start + count) of a CFR video as (count, H, W, 3) uint8 RGB."""
    frames = list(iter_rgb(path, width, height, fps=fps, start=start, count=count))
    if len(frames) != count:
        raise AssembleError(f"could not decode frames {start}..{start + count - 1} of "
                            f"{path.name}: it ended after {len(frames)}")
    return np.stack(frames)


def iter_rgb(path: Path, width: int, height: int, *, fps: Fraction | None = None,
             start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """Frames of a CFR video from `start` (all, or `count`), in order, as writable
    (H, W, 3) uint8 RGB arrays.

    Seeks to half a frame before `start` (ffmpeg decodes from the keyframe before and drops what
    precedes the seek point), so rounding can never land on a neighbour.
    """
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    if start > 0:
        if fps is None:
            raise ValueError("decoding from a frame other than 0 needs the frame rate")
        args += ["-ss", _seconds((start - Fraction(1, 2)) / fps)]
    args += ["-i", str(path), "-map", "0:v:0"]
    if count is not None:
        args += ["-frames:v", str(count)]
    args += ["-vf", f"{_TO_RGB},format=rgb24", "-fps_mode", "passthrough", "-f", "rawvideo",
             "pipe:"]
    yield from pipe_rgb_frames(args, width, height, path.name, AssembleError)


def concat_list(entries: Sequence[tuple[Path, int | None, int | None]], fps: Fraction) -> str:
    """An ffconcat script: each entry is (file, first frame or None, end frame or None).

    The in point is rounded up to the microsecond (ffmpeg seeks to the keyframe at or before it,
    which is the frame itself), the out point down (packets at or after it are dropped), so the
    frame boundaries hold exactly whatever the rate.
    """
    lines = ["ffconcat version 1.0"]
    for path, start, stop in entries:
        lines.append("file " + _quote(str(path)))
        if start:
            lines.append(f"inpoint {_microseconds(start / fps, up=True)}")
        if stop is not None:
            lines.append(f"outpoint {_microseconds(stop / fps, up=False)}")
    return "\n".join(lines) + "\n"


def audio_samples(frames: int, fps: Fraction) -> int:
    """The 48 kHz samples that last as long as `frames` frames at `fps`."""
    return round(Fraction(frames) * AUDIO_RATE / fps)


def audio_filter(lead_samples: int, total_samples: int) -> str:
    """Resample to 48 kHz, delay by `lead_samples`, then pad or trim to exactly
    `total_samples`."""
    parts = [f"aresample={AUDIO_RATE}"]
    if lead_samples > 0:
        parts.append(f"adelay=delays={lead_samples}S:all=1")
    parts += [f"apad=whole_len={total_samples}", f"atrim=end_sample={total_samples}"]
    return ",".join(parts)


def _microseconds(seconds: Fraction, *, up: bool) -> str:
    value = seconds * 1_000_000
    micros = math.ceil(value) if up else math.floor(value)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _seconds(seconds: Fraction) -> str:
    return f"{float(seconds):.6f}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _tail(log: bytes, lines: int = 8) -> str:
    text = log.decode("utf-8", "replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no log)"
