"""What every generator shares: the protocol, its output, its needs, and conditioning images.

A generator is a plain object: `load(device)` once, `generate(task, ...)` many times, then
`release()`. It never imports ray; the engine is what puts it on a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from previz.generate.errors import GeneratorError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from previz.catalog import ModelSpec
    from previz.plan.types import Conditioning, ShotTask

__all__ = [
    "Generator",
    "EncodingGenerator",
    "SplittingGenerator",
    "GeneratorDeclaration",
    "GeneratorKind",
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


class GeneratorKind(str, Enum):
    """What a generator's takes are worth in a cut."""

    VIDEO_MODEL = "video_model"  # a real model: final-quality takes, minutes of GPU each
    ANIMATIC = "animatic"  # the draft: a cheap CPU stand-in, never final quality
    TEST_PATTERN = "test_pattern"  # stands in for a video model in tests and rehearsals


@dataclass(frozen=True)
class GeneratorDeclaration:
    """What a generator is, declared once beside it and read by plan, worker and engine (none of
    them checks a generator's name).

    `options` are every option it reads; of those, `load_options` change what is loaded (a worker
    reloads when they change) and `pixel_neutral_options` change memory or speed but not pixels
    (left out of take keys, so turning on offload re-renders nothing).
    """

    version: str  # of the code that makes its pixels: part of every key made with it
    kind: GeneratorKind
    options: frozenset[str] = frozenset()
    load_options: frozenset[str] = frozenset()
    pixel_neutral_options: frozenset[str] = frozenset()
    # It encodes as it draws (`EncodingGenerator.render_take`): when its frames are the take
    # exactly, the worker publishes its file instead of handing raw frames to an encode task.
    encodes_own_output: bool = False
    # It computes with torch on a CUDA device when its worker has one (else on the CPU).
    computes_on_gpu: bool = False
    # On a gang (a shot on several GPUs) its members form a torch.distributed group before it
    # loads: its `split(gpus, rank)` divides the work over that group.
    needs_process_group: bool = False
    # Its pictures show the shot code and notes (draft cards): they are part of its keys.
    title_in_pixels: bool = False
    # Its cost grows with denoising steps (an animatic draws each frame once, whatever the
    # storyboard's `steps:` says: its estimates count one).
    steps_cost: bool = True
    # The seconds a task will take when its options state them (a rehearsal's own timings):
    # stated_seconds(options, frames, steps) -> seconds, or None to use the catalog's cost.
    stated_seconds: Callable[[dict[str, Any], int, int], float | None] | None = None
    # What its pictures are, in the IPTC digital source type terms content credentials use:
    # a trained model's output, or pictures an algorithm drew from no training data.
    digital_source_type: str = "trainedAlgorithmicMedia"

    def __post_init__(self) -> None:
        undeclared = (self.load_options | self.pixel_neutral_options) - self.options
        if undeclared:
            raise ValueError(f"options {sorted(undeclared)} are not among the declared options")

    @property
    def final_quality(self) -> bool:
        """Whether its takes are what a deadline protects (an animatic is what stands in)."""
        return self.kind is not GeneratorKind.ANIMATIC


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
    # the call's sound, 48 kHz stereo float32 as long as the frames (a model that makes sound:
    # ModelSpec.makes_sound); None: silent
    sound: np.ndarray | None = None

    def __post_init__(self) -> None:
        import numpy as np  # here, not at import: the plan reads declarations without numpy

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
    declaration: ClassVar[GeneratorDeclaration]

    @property
    def needs(self) -> GeneratorNeeds: ...

    def load(self, device: str = "cpu") -> None: ...

    def generate(self, task: ShotTask, *, images: ImageSource = ...,
                 progress: ProgressCallback | None = None, attempt: int = 1) -> GeneratedFrames: ...

    def release(self) -> None: ...


@runtime_checkable
class SplittingGenerator(Generator, Protocol):
    """One whose models the catalog marks `splits`: a task runs across a gang of GPUs."""

    def split(self, gpus: int, rank: int) -> None:
        """Run as member `rank` of a gang of `gpus` (after load, before any task)."""


@runtime_checkable
class EncodingGenerator(Generator, Protocol):
    """A generator that encodes as it draws (`declaration.encodes_own_output`): `render_take`
    writes the task's frames, encoded, to `path` and returns an object with `record` (what was
    done, as `GeneratedFrames.record`)."""

    def render_take(self, task: ShotTask, path: Path, *, images: ImageSource = ...,
                    progress: ProgressCallback | None = None, attempt: int = 1) -> Any: ...


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
