"""Frame arithmetic shared by validation and the plan: durations to exact frames, timecode."""

from __future__ import annotations

from fractions import Fraction

__all__ = ["frames_of", "timecode"]


def frames_of(duration: str, fps: Fraction) -> int:
    """Exact frames of a normalised duration ('96f' or '4.5s') at `fps`, rounding half up.

    A second of NTSC video (23.976) is counted as the editor's timecode second of 24 frames
    would be only when written in frames; '4s' at 23.976 is round(4 * 24000/1001) = 96 frames.
    """
    if duration.endswith("f"):
        return int(duration[:-1])
    seconds = Fraction(duration[:-1])
    return max(1, int(seconds * fps + Fraction(1, 2)))


def timecode(frame: int, fps: Fraction) -> str:
    """Non-drop-frame timecode HH:MM:SS:FF of an absolute frame count at the nominal rate."""
    nominal = round(fps)
    frames = frame % nominal
    seconds_total = frame // nominal
    return (
        f"{seconds_total // 3600:02d}:{seconds_total // 60 % 60:02d}:"
        f"{seconds_total % 60:02d}:{frames:02d}"
    )
