"""Helpers for generator tests: ShotTasks built directly, pictures to condition on, and
measurements of decoded frames."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from previz.catalog import model_spec
from previz.plan.types import CameraSpec, Conditioning, ShotTask

PROMPT = "an old keeper climbs the last steps into the glass lamp room"


def spy_on(monkeypatch, target) -> list[dict]:
    """Record the keyword arguments of every call to a pipeline class (`target`, or the class of
    a generator's pipeline); the real pipeline still runs."""
    cls = target if isinstance(target, type) else type(target.pipe)
    calls: list[dict] = []
    original = cls.__call__

    @functools.wraps(original)
    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", recording)
    return calls


def make_task(model: str = "draft", **fields) -> ShotTask:
    """A ShotTask as the plan would make it, with small defaults; any field may be overridden."""
    spec = model_spec(model)
    camera = fields.pop("camera", None)
    if isinstance(camera, str):
        camera = CameraSpec(move=camera)
    values = dict(
        key=f"{model}-{fields.get('shot_id', 'SH0010')}-{fields.get('seed', 1234)}",
        shot_id="SH0010", take=1, segment=0, segments=1, generator=spec.generator, model=model,
        pipeline=spec.pipeline, prompt=PROMPT, shot_prompt="{KEEPER} climbs into {LAMP_ROOM}",
        camera=camera or CameraSpec(), characters=("KEEPER",), locations=("LAMP_ROOM",),
        seed=1234, steps=spec.default_steps if spec.generator != "diffusers" else 2,
        guidance=spec.default_guidance, width=64, height=48, num_frames=9,
        fps=spec.fps or 24.0, estimate_seconds=1.0,
    )
    values.update(fields)
    return ShotTask(**values)


def forbid_loading(monkeypatch, *pipelines: str) -> None:
    """Make loading these diffusers pipelines fail the test: wrong weights must be refused
    before."""
    import diffusers

    def never(*args, **kwargs):
        raise AssertionError("from_pretrained must not run on the wrong weights")

    for name in pipelines:
        monkeypatch.setattr(getattr(diffusers, name), "from_pretrained", never)


def weights_with_transformer(tiny_weights, folder: Path, weights: str,
                             transformer_from: str | None) -> Path:
    """Tiny weights `weights`, with the transformer of `transformer_from` swapped in (a copy in
    `folder`) when given: a folder whose parts belong to different models."""
    source = tiny_weights(weights)
    if not transformer_from:
        return source
    mixed = shutil.copytree(source, folder / weights)
    shutil.rmtree(mixed / "transformer")
    shutil.copytree(tiny_weights(transformer_from) / "transformer", mixed / "transformer")
    return mixed


def condition(role: str, path: Path, name: str | None = None) -> Conditioning:
    return Conditioning(role=role, path=str(path), name=name)


def solid(path: Path, colour, size=(64, 48)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def marker_panel(path: Path, size=(640, 360), at=(0.75, 0.5), radius=10) -> Path:
    """A black panel with one white disc: its centroid shows where the picture moved."""
    image = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(image)
    x, y = at[0] * size[0], at[1] * size[1]
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(255, 255, 255))
    image.save(path)
    return path


def textured_panel(path: Path, size=(640, 360), seed=3) -> Path:
    """Smooth random texture: good for measuring shifts by phase correlation."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    image = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC)
    image.save(path)
    return path


def decode(path: Path) -> np.ndarray:
    """Every frame of a video file, decoded with PyAV, as (T, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def centroid(frame: np.ndarray, threshold: int = 128) -> tuple[float, float]:
    """(x, y) of the bright pixels of a frame."""
    ys, xs = np.nonzero(frame.mean(axis=2) > threshold)
    assert len(xs), "no bright pixels in the frame"
    return float(xs.mean()), float(ys.mean())


def phase_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) that moves the content of frame a onto frame b (phase correlation)."""
    fa = np.fft.fft2(a.mean(axis=2) - a.mean())
    fb = np.fft.fft2(b.mean(axis=2) - b.mean())
    cross = fb * np.conj(fa)
    cross /= np.abs(cross) + 1e-9
    peak = np.unravel_index(np.argmax(np.abs(np.fft.ifft2(cross))), a.shape[:2])
    dy, dx = (p if p <= n // 2 else p - n for p, n in zip(peak, a.shape[:2], strict=True))
    return float(dx), float(dy)


def horizontal_shift(a: np.ndarray, b: np.ndarray, search: int = 80) -> int:
    """How far (pixels, + is right) the content of band a moved to be where it is in band b:
    the shift with the least difference, searched exhaustively."""
    a, b = a.astype(float).mean(axis=2), b.astype(float).mean(axis=2)
    width = a.shape[1]
    errors = {dx: np.abs(a[:, search:width - search] - b[:, search + dx:width - search + dx])
              .mean() for dx in range(-search, search + 1)}
    return min(errors, key=errors.get)
