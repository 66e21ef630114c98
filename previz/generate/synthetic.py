"""The synthetic generator: the engine's test double.

Each frame shows a background colour taken from the task key, the frame number (0-based within
the task) in large digits, the shot/take/segment, and a machine-readable strip: 18 blocks across
the lower part of the frame — a white guard, the frame number in 16 bits (most significant
first, white = 1), a black guard — each block 5% of the frame width (16 px at 320 px wide and
up), so it survives H.264 and any rescale that keeps the aspect ratio. `read_frame_number`
decodes it.

Options (constructor `options`, overridden per task by `task.options`):
  load_seconds, seconds_per_frame, seconds_per_frame_step, seconds_per_shot: simulated time
    (sleeps; per frame and step stands in for a diffusion model, whose time follows its steps);
  faults: a list (or its JSON text) of {shot, attempt, kind, seconds, take, segment, step} where
    kind is raise (InjectedFault), exit (os._exit), hang (sleep `seconds`, then go on) or
    oom (GeneratorOutOfMemory); `attempt`, `take`, `segment` omitted match any; `step` is how
    many progress steps pass before the fault fires (default 0); `rank`: only that member of
    a gang (omitted: any);
  gpus, gpu_memory_gb: what the generator says it needs (default: the catalog entry's).

On a gang of n GPUs (`split`) it takes its time divided by the catalog's context-parallel
speed-up for n, as a real model would; every member waits it out, rank 0's frames are the take.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from previz.catalog import parallel_speedup
from previz.generate.errors import GeneratorError, GeneratorOutOfMemory, InjectedFault
from previz.generate.fonts import font
from previz.generate.types import (
    GeneratedFrames,
    GeneratorDeclaration,
    GeneratorKind,
    GeneratorNeeds,
    ImageSource,
    ProgressCallback,
    images_from_files,
    task_option,
)

if TYPE_CHECKING:
    from previz.catalog import ModelSpec
    from previz.plan.types import ShotTask

__all__ = ["SyntheticGenerator", "read_frame_number", "draw_frame_number_strip", "STRIP_BITS",
           "EXIT_CODE"]

STRIP_BITS = 16
_BLOCKS = STRIP_BITS + 2  # white guard, bits, black guard
_STRIP_X0, _STRIP_X1 = 0.05, 0.95  # fractions of the width
_STRIP_Y0, _STRIP_Y1 = 0.74, 0.90  # fractions of the height
EXIT_CODE = 86  # what an injected `exit` fault exits with
_FAULT_KINDS = ("raise", "exit", "hang", "oom")


def _stated_seconds(options: dict[str, Any], frames: int, steps: int) -> float | None:
    """A rehearsal states its own speed: estimate exactly what it will take."""
    if not any(name in options for name in _TIMINGS):
        return None
    return round(float(options.get("seconds_per_frame", 0)) * frames
                 + float(options.get("seconds_per_frame_step", 0)) * frames * steps
                 + float(options.get("seconds_per_shot", 0)), 3)


_TIMINGS = frozenset({"seconds_per_frame", "seconds_per_frame_step", "seconds_per_shot"})


class SyntheticGenerator:
    """A deterministic test pattern with configurable timing and injected faults."""

    declaration = GeneratorDeclaration(
        version="1", kind=GeneratorKind.TEST_PATTERN,
        options=_TIMINGS | {"load_seconds", "faults", "gpus", "gpu_memory_gb"},
        load_options=frozenset({"load_seconds"}),
        pixel_neutral_options=_TIMINGS | {"load_seconds", "faults"},
        stated_seconds=_stated_seconds, digital_source_type="algorithmicMedia",
    )

    def __init__(self, spec: ModelSpec, *, weights: str | None = None,
                 options: dict[str, Any] | None = None):
        self.spec = spec
        self.weights = weights
        self.options = dict(options or {})
        self.device: str | None = None
        self.gang, self.rank = 1, 0
        _faults(self.options.get("faults"))  # bad fault specs fail here, not mid-render

    @property
    def needs(self) -> GeneratorNeeds:
        return GeneratorNeeds(gpus=int(self.options.get("gpus", self.spec.gpus)),
                              gpu_memory_gb=float(self.options.get("gpu_memory_gb",
                                                                   self.spec.gpu_memory_gb)))

    def load(self, device: str = "cpu") -> None:
        seconds = float(self.options.get("load_seconds", 0.0))
        if seconds > 0:
            time.sleep(seconds)
        self.device = device

    def split(self, gpus: int, rank: int) -> None:
        """Run as member `rank` of a gang of `gpus` (nothing to shard: the time shrinks)."""
        self.gang, self.rank = gpus, rank

    def release(self) -> None:
        self.device = None

    def generate(self, task: ShotTask, *, images: ImageSource = images_from_files,
                 progress: ProgressCallback | None = None, attempt: int = 1) -> GeneratedFrames:
        """1. find the faults meant for this call; 2. spend the simulated time step by step,
        reporting progress and firing faults; 3. draw the frames."""
        started = time.monotonic()
        faults = [f for f in _faults(task_option(task, self.options, "faults"))
                  if _matches(f, task, attempt) and f.get("rank") in (None, self.rank)]
        steps = max(1, task.steps)
        seconds = float(task_option(task, self.options, "seconds_per_shot", 0.0)) + (
            float(task_option(task, self.options, "seconds_per_frame", 0.0))
            + float(task_option(task, self.options, "seconds_per_frame_step", 0.0)) * steps
        ) * task.num_frames
        seconds /= parallel_speedup(self.gang)
        for step in range(steps + 1):
            for fault in faults:
                if int(fault.get("step", 0)) == step:
                    _fire(fault, task, attempt)
            if step == steps:
                break
            if seconds:
                time.sleep(seconds / steps)
            if progress is not None:
                progress(step + 1, steps)
        conditioning = [{"role": c.role, "name": c.name, "from_key": c.from_key,
                         "path": c.path} for c in task.conditioning]
        frames = synthetic_frames(task)
        record = {
            "generator": "synthetic", "model": self.spec.name, "device": self.device,
            "prompt": task.prompt, "seed": task.seed, "attempt": attempt,
            "conditioning": conditioning, "warnings": [],
            "options": {k: v for k, v in {**self.options, **task.options}.items()},
            "timings": {"generate_seconds": time.monotonic() - started},
        }
        return GeneratedFrames(frames=frames, fps=task.fps, record=record).check(task)


def synthetic_frames(task: ShotTask) -> np.ndarray:
    """The pattern for every frame of a task (deterministic: depends on the key and size)."""
    width, height = task.width, task.height
    digest = hashlib.sha256(task.key.encode()).digest()
    colour = tuple(48 + b % 160 for b in digest[:3])
    base = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(base)
    label = f"{task.shot_id} T{task.take} S{task.segment + 1}/{task.segments}"
    small = font(max(8, height // 14), bold=True)
    draw.text((max(2, width // 40), max(2, height // 40)), label, font=small, fill=(255, 255, 255),
              stroke_width=max(1, height // 200), stroke_fill=(0, 0, 0))
    big = font(max(10, int(height * 0.38)), bold=True)
    frames = np.empty((task.num_frames, height, width, 3), np.uint8)
    for index in range(task.num_frames):
        image = base.copy()
        draw = ImageDraw.Draw(image)
        draw.text((width / 2, height * 0.42), str(index), font=big, anchor="mm",
                  fill=(255, 255, 255), stroke_width=max(1, height // 90), stroke_fill=(0, 0, 0))
        frames[index] = np.asarray(image)
        draw_frame_number_strip(frames[index], index)
    return frames


def _strip_geometry(width: int, height: int) -> tuple[list[tuple[int, int]], int, int]:
    edges = np.linspace(width * _STRIP_X0, width * _STRIP_X1, _BLOCKS + 1)
    blocks = [(int(round(edges[i])), int(round(edges[i + 1]))) for i in range(_BLOCKS)]
    return blocks, int(round(height * _STRIP_Y0)), int(round(height * _STRIP_Y1))


def draw_frame_number_strip(frame: np.ndarray, number: int) -> None:
    """Draw the machine-readable strip for `number` into an (H, W, 3) uint8 frame, in place."""
    if not 0 <= number < 2**STRIP_BITS:
        raise ValueError(f"frame number {number} does not fit in {STRIP_BITS} bits")
    height, width = frame.shape[:2]
    blocks, top, bottom = _strip_geometry(width, height)
    bits = [1] + [(number >> (STRIP_BITS - 1 - i)) & 1 for i in range(STRIP_BITS)] + [0]
    for (x0, x1), bit in zip(blocks, bits, strict=True):
        frame[top:bottom, x0:x1] = 255 if bit else 0


def read_frame_number(frame: np.ndarray) -> int:
    """The frame number drawn by the synthetic generator into `frame` (H, W, 3 uint8 RGB).

    Works after lossy encoding and after any rescale that keeps the aspect ratio. Raises
    ValueError if the frame carries no strip (its guard blocks are not white and black).
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) frame, got shape {frame.shape}")
    height, width = frame.shape[:2]
    blocks, top, bottom = _strip_geometry(width, height)
    rows = slice(top + (bottom - top) // 4, bottom - (bottom - top) // 4 or bottom)
    levels = []
    for x0, x1 in blocks:
        inset = (x1 - x0) // 4
        patch = frame[rows, x0 + inset:max(x1 - inset, x0 + inset + 1), :3]
        levels.append(float(patch.mean()))
    if levels[0] < 160 or levels[-1] > 96:
        raise ValueError("no synthetic frame-number strip in this frame (guard blocks not found)")
    number = 0
    for level in levels[1:-1]:
        number = (number << 1) | int(level >= 128)
    return number


def _faults(value: Any) -> list[dict[str, Any]]:
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise GeneratorError(f"synthetic option faults: not JSON ({exc}) — give a list of "
                                 "{shot, attempt, kind, seconds}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise GeneratorError(f"synthetic option faults: expected a list, got {value!r}")
    for fault in value:
        if not isinstance(fault, dict) or fault.get("kind") not in _FAULT_KINDS:
            raise GeneratorError(f"synthetic option faults: {fault!r} needs kind one of "
                                 f"{', '.join(_FAULT_KINDS)}")
    return value


def _matches(fault: dict[str, Any], task: ShotTask, attempt: int) -> bool:
    wanted = {"shot": task.shot_id, "attempt": attempt, "take": task.take,
              "segment": task.segment}
    return all(fault.get(name) in (None, value) for name, value in wanted.items())


def _fire(fault: dict[str, Any], task: ShotTask, attempt: int) -> None:
    where = f"{task.shot_id} take {task.take} segment {task.segment} attempt {attempt}"
    kind = fault["kind"]
    if kind == "raise":
        raise InjectedFault(f"injected fault at {where}")
    if kind == "exit":
        os._exit(int(fault.get("code", EXIT_CODE)))
    if kind == "hang":
        time.sleep(float(fault.get("seconds", 3600)))
        return
    raise GeneratorOutOfMemory(
        f"injected out-of-memory at {where}", model=task.model,
        tried={"width": task.width, "height": task.height, "frames": task.num_frames,
               "options": dict(task.options)},
        suggestion={"cpu_offload": True})
