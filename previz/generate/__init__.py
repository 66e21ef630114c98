"""Stage 3, generate: one model, loaded once, turning ShotTasks into frames.

    generator = create_generator(model_spec(task.model), weights=task.weights, options=...)
    generator.load("cuda")
    result = generator.generate(task, images=images_from_files, progress=on_step)
    result.frames   # (T, H, W, 3) uint8 at result.fps; result.record says what was done
    generator.release()

Generators: `draft` (CPU animatic), `synthetic` (test pattern with injected faults) and
`diffusers` (the video models of the catalog). Importing this package never imports torch.
"""

from typing import Any

from previz.generate.errors import (
    GeneratorError,
    GeneratorLoadError,
    GeneratorNeedsGpu,
    GeneratorOutOfMemory,
    InjectedFault,
)
from previz.generate.registry import create_generator, register_generator, registered_generators
from previz.generate.types import (
    EncodingGenerator,
    GeneratedFrames,
    Generator,
    GeneratorDeclaration,
    GeneratorFactory,
    GeneratorKind,
    GeneratorNeeds,
    ImageSource,
    ProgressCallback,
    fit_image,
    images_from_files,
)

__all__ = [
    "Generator",
    "EncodingGenerator",
    "GeneratorDeclaration",
    "GeneratorKind",
    "GeneratorFactory",
    "GeneratedFrames",
    "GeneratorNeeds",
    "ImageSource",
    "ProgressCallback",
    "images_from_files",
    "fit_image",
    "register_generator",
    "create_generator",
    "registered_generators",
    "read_frame_number",
    "GeneratorError",
    "GeneratorLoadError",
    "GeneratorNeedsGpu",
    "GeneratorOutOfMemory",
    "InjectedFault",
]


def __getattr__(name: str) -> Any:
    # The synthetic generator draws with numpy and PIL: loaded when first asked for, so the
    # plan can read generator declarations from the registry without them.
    if name == "read_frame_number":
        from previz.generate.synthetic import read_frame_number

        return read_frame_number
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
