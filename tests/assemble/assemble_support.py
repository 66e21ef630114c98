"""Helpers shared by the assembly tests: decode a video, build a cut, measure regions of a frame.

A module, not conftest, so tests can import it by name (as the store tests do).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
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
              **options) -> tuple[RenderPlan, dict[str, TakeMedia], Cut]:
    """A plan of draft-model shots, a synthetic take per shot (shot n shows take id n), and the
    cut assembled into `folder/work/v001`. `failed` shots get TakeMedia(None, "failed", key,
    error), `missing` ones nothing at all, `draft` ones keep their take with status "draft"."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = make_plan(folder, shots, fps=fps, size=size, prompts=prompts, notes=notes,
                     audio=audio)
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
