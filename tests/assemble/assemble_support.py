"""Helpers shared by the assembly tests: decode a video, build a cut, measure regions of a frame.

A module, not conftest, so tests can import it by name (as the store tests do).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from audio_support import TONE_AMPLITUDE
from conftest import make_plan, write_takes

from previz.assemble import AssembleOptions, Cut, TakeMedia, cut_from_takes
from previz.plan.types import RenderPlan

SOURCE_START = 1001  # DESIGN §5: source frames start at 1001
RECORD_START = "01:00:00:00"  # DESIGN §5: the cut's record timecode


def decode(path: Path) -> dict:
    """Every frame of the first video stream as RGB, with the stream's rate and timecode."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        images = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return {
            "images": images,
            "rate": stream.average_rate,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "timecode": stream.metadata.get("timecode") or container.metadata.get("timecode"),
        }


def nominal_timecode(frame: int, fps: Fraction) -> str:
    """Non-drop HH:MM:SS:FF of an absolute frame count (written out here, not imported)."""
    nominal = round(fps)
    seconds, frames = divmod(frame, nominal)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frames:02d}"


def record_start_frame(fps: Fraction) -> int:
    return 3600 * round(fps)  # 01:00:00:00


def build_cut(folder: Path, shots: list[tuple[int, str | None]], *, fps: str = "24",
              size: tuple[int, int] = (256, 144), failed: Iterable[int] = (),
              missing: Iterable[int] = (), draft: Iterable[int] = (),
              errors: dict[int, str] | None = None, prompts: dict[int, str] | None = None,
              notes: dict[int, str] | None = None, audio: Path | None = None,
              locations: dict[str, str] | None = None,
              **options) -> tuple[RenderPlan, dict[str, TakeMedia], Cut]:
    """A plan of draft-model shots, a synthetic take per shot (shot n shows take id n), and the
    cut assembled into `folder/work/v001`. `failed` shots get TakeMedia(None, "failed", key,
    error), `missing` ones nothing at all, `draft` ones keep their take with status "draft"."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = make_plan(folder, shots, fps=fps, size=size, prompts=prompts, notes=notes,
                     audio=audio, locations=locations)
    takes: dict[str, TakeMedia | None] = dict(write_takes(plan, folder / "takes"))
    errors = errors or {}
    for index in failed:
        shot = plan.shots[index]
        takes[shot.id] = TakeMedia(None, "failed", shot.selected_take.key,
                                   errors.get(index, "CUDA out of memory"))
    for index in missing:
        del takes[plan.shots[index].id]
    for index in draft:
        given = takes[plan.shots[index].id]
        takes[plan.shots[index].id] = TakeMedia(given.path, "draft", given.key)
    options.setdefault("date", "2024-05-01")
    cut = cut_from_takes(plan, takes, folder / "work", options=AssembleOptions(**options))
    return plan, takes, cut


TONE_RMS = TONE_AMPLITUDE / 32768 / np.sqrt(2)


def decode_audio(path: Path) -> np.ndarray:
    """The first audio stream's first channel as float samples, decoded with PyAV (which drops
    the encoder's priming samples, so sample 0 is the picture's first frame; the tail runs on to
    the end of the last AAC frame)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.rate == 48000
        chunks = [f.to_ndarray()[0] for f in container.decode(stream)]
    return np.concatenate(chunks).astype(np.float64)


SOUND_WINDOW = 48  # 1 ms at 48 kHz, far finer than a frame (1602 samples at 29.97 fps)


def sound_span(samples: np.ndarray, threshold: float = 0.02) -> tuple[int, int]:
    """(first, end) sample of the part that sounds: the first and past the last 1 ms window
    whose RMS is over `threshold` (the test tone's RMS is 0.17; AAC's silence is 0)."""
    usable = len(samples) // SOUND_WINDOW * SOUND_WINDOW
    rms = np.sqrt((samples[:usable].reshape(-1, SOUND_WINDOW) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > threshold)
    assert loud.size, "no sound at all"
    return int(loud[0]) * SOUND_WINDOW, (int(loud[-1]) + 1) * SOUND_WINDOW


def assert_sound_between(samples: np.ndarray, start: int, end: int, total: int) -> None:
    """The track sounds from sample `start` to `end` (to a window) and is silent elsewhere up
    to `total`: the lead before the bed (the review copy's slate) and the padding past it."""
    first, last = sound_span(samples[:total])
    assert abs(first - start) <= SOUND_WINDOW, (first, start)
    assert abs(last - end) <= SOUND_WINDOW, (last, end)
    margin = 2048  # two AAC frames: the codec smears an abrupt edge this far at most
    assert np.abs(samples[:max(0, start - margin)]).max(initial=0) < 1e-3  # silent lead
    assert np.abs(samples[end + margin:total]).max(initial=0) < 1e-3  # silent padding
    middle = samples[start + margin:end - margin]
    assert np.sqrt((middle ** 2).mean()) == pytest.approx(TONE_RMS, rel=0.1)  # its level kept


def region(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of `image` inside (left, top, right, bottom), given as fractions of its size."""
    height, width = image.shape[:2]
    left, top, right, bottom = box
    return image[round(top * height):round(bottom * height),
                 round(left * width):round(right * width)]


def changed_fraction(a: np.ndarray, b: np.ndarray, threshold: int = 40) -> float:
    """The fraction of pixels whose largest channel difference exceeds `threshold`."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
    return float((diff > threshold).mean())


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def count_colour(image: np.ndarray, colour: str) -> int:
    """Pixels of a strong amber (the draft flag) or red (the placeholder flag)."""
    r, g, b = (image[..., i].astype(np.int16) for i in range(3))
    if colour == "amber":
        mask = (r > 170) & (g > 110) & (g < 210) & (b < 100) & (r - b > 120)
    elif colour == "red":
        mask = (r > 140) & (g < 90) & (b < 90)
    else:
        raise ValueError(colour)
    return int(mask.sum())
