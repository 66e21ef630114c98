"""What every generator shares: the protocol, its output, its needs, and conditioning images.

A generator is a plain object: `load(device)` once, `generate(task, ...)` many times, then
`release()`. It never imports ray; the engine is what puts it on a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from previz.generate.errors import GeneratorError

if TYPE_CHECKING:
    from PIL import Image

    from previz.catalog import ModelSpec
    from previz.plan.types import Conditioning, ShotTask

__all__ = [
    "Generator",
    "GeneratorFactory",
    "GeneratedFrames",
    "GeneratorNeeds",
    "ImageSource",
    "ProgressCallback",
    "images_from_files",
    "fit_image",
    "task_option",
]

ImageSource = Callable[["Conditioning"], "Image.Image"]
"""Gives the PIL image for a conditioning entry (a storyboard file or an earlier take's frame)."""

ProgressCallback = Callable[[int, int], None]
"""Called as progress(done, total), e.g. once per denoising step."""


@dataclass(frozen=True)
class GeneratorNeeds:
    """What a loaded generator occupies on a worker (from the catalog entry)."""

    gpus: int
    gpu_memory_gb: float
    cpus: int = 1


@dataclass
class GeneratedFrames:
    """One generator call's output: `frames` (T, H, W, 3) uint8 RGB at `fps`, and what was done."""

    frames: np.ndarray
    fps: float
    record: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        frames = self.frames
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
                or frames.shape[-1] != 3:
            shape = getattr(frames, "shape", None)
            dtype = getattr(frames, "dtype", type(frames).__name__)
            raise GeneratorError(f"generated frames must be a uint8 array (T, H, W, 3), got "
                                 f"{dtype} {shape}")

    def check(self, task: ShotTask) -> GeneratedFrames:
        """Raise unless these are exactly the frames the task asked for; return self."""
        expected = (task.num_frames, task.height, task.width, 3)
        if self.frames.shape != expected:
            got = self.frames.shape
            raise GeneratorError(
                f"{task.shot_id} take {task.take} segment {task.segment}: the generator made "
                f"{got[0]} frames of {got[2]}x{got[1]}, the task asked for {task.num_frames} "
                f"frames of {task.width}x{task.height}")
        return self


@runtime_checkable
class Generator(Protocol):
    """One model, loaded once, generating many tasks."""

    spec: ModelSpec

    @property
    def needs(self) -> GeneratorNeeds: ...

    def load(self, device: str = "cpu") -> None: ...

    def generate(self, task: ShotTask, *, images: ImageSource = ...,
                 progress: ProgressCallback | None = None, attempt: int = 1) -> GeneratedFrames: ...

    def release(self) -> None: ...


GeneratorFactory = Callable[..., Generator]
"""factory(spec, *, weights=None, options=None) -> Generator"""


def images_from_files(condition: Conditioning) -> Image.Image:
    """The default ImageSource: open the storyboard file a conditioning entry names (as RGB).

    An entry that only has `from_key` (the last frame of an earlier take) needs the engine's
    image source, which reads it back from the store.
    """
    from PIL import Image

    if condition.path is None:
        what = f"the last frame of {condition.from_key}" if condition.from_key else "an image"
        raise GeneratorError(f"{condition.role} conditioning needs {what}, which only the "
                             "engine's image source can fetch (no file path given)")
    path = Path(condition.path)
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise GeneratorError(f"{condition.role} image {path} does not exist") from None
    except OSError as exc:
        raise GeneratorError(f"{condition.role} image {path} cannot be read: {exc}") from None


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale `image` to cover width x height and crop the centre (no distortion), as RGB."""
    from PIL import Image

    image = image.convert("RGB")
    if image.size == (width, height):
        return image
    scale = max(width / image.width, height / image.height)
    crop_w, crop_h = min(image.width, width / scale), min(image.height, height / scale)
    left, top = (image.width - crop_w) / 2, (image.height - crop_h) / 2
    box = (left, top, left + crop_w, top + crop_h)
    return image.resize((width, height), Image.Resampling.LANCZOS, box=box)


def task_option(task: ShotTask, options: dict[str, Any], name: str, default: Any = None) -> Any:
    """An option for this call: the task's own options win over the generator's."""
    if name in task.options:
        return task.options[name]
    return options.get(name, default)
