"""The draft generator: a CPU animatic an editor can cut with.

A shot becomes its storyboard panel (the task's first image) or, without one, a title card
(`previz.generate.card`), with the camera move played out as a 2D move (`previz.generate.moves`).
The picture is drawn once, at twice the output size and lightly pre-filtered (for the encoder's
Y/Cb/Cr planes, luma only); each frame is then one nearest-neighbour resampling of it. A held
frame instead gets a proper (box) filter, and no prefilter.

Pictures and where the move starts:
  - a storyboard panel: the move stays inside the panel (Ken Burns: the panel is scaled just
    enough to cover every view);
  - the last frame of an earlier take (continuing a shot): frame 0 is that frame exactly and the
    move leaves from it; what the camera discovers beyond it is a blurred, darkened extension;
  - a title card: a backdrop set with the card in front; trucks, cranes and orbits move the two
    at different speeds (parallax).
A last image, when given, is dissolved to over the shot.

Two outputs from the same layers: `generate()` returns RGB frames (the generator contract), and
`render_take()` samples the layers as BT.709 Y/Cb/Cr planes straight into the encoder, skipping
the RGB frame array and the encoder's colour conversion — the fast path for draft takes.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from PIL import Image, ImageFilter

from previz.generate.card import camera_notes, card_layer, set_background
from previz.generate.errors import GeneratorError
from previz.generate.moves import MOVES, PARALLAX, View, camera_path
from previz.generate.types import (
    GeneratedFrames,
    GeneratorDeclaration,
    GeneratorKind,
    GeneratorNeeds,
    ImageSource,
    ProgressCallback,
    fit_image,
    images_from_files,
    task_option,
)

if TYPE_CHECKING:
    from previz.catalog import ModelSpec
    from previz.media.encode import CodecSettings, EncodedTake
    from previz.plan.types import Conditioning, ShotTask

__all__ = ["DraftGenerator", "DraftTake", "DRAFT_CODEC"]

DRAFT_CODEC = "h264-fast"  # the encode settings a draft take is meant for (see media.encode)
_SCALE = 2  # the picture is drawn at twice the output size
_PREFILTER = 0.6  # box-blur radius, in picture pixels, before nearest-neighbour sampling
_PROGRESS_UPDATES = 20
_MOVING = Image.Resampling.NEAREST  # resampling of moving frames (held frames get BOX)
_REUSE_LIMIT = 1536 * 2**20  # keep at most this much frame memory between shots
_CARD_MAX_ZOOM = 1.3  # the card (72% of the frame) still fits at the end of a dolly in
_PICTURE_MAX_ZOOM = 2.2
# RGB -> BT.709 limited-range Y, Cb, Cr (as ffmpeg's encoder would convert), for Image.convert
_YCBCR_709 = (
    (0.2126 * 219 / 255, 0.7152 * 219 / 255, 0.0722 * 219 / 255, 16.0),
    (-0.2126 / 1.8556 * 224 / 255, -0.7152 / 1.8556 * 224 / 255, 0.5 * 224 / 255, 128.0),
    (0.5 * 224 / 255, -0.7152 / 1.5748 * 224 / 255, -0.0722 / 1.5748 * 224 / 255, 128.0),
)


class DraftTake(NamedTuple):
    encoded: EncodedTake
    record: dict[str, Any]
    sound: np.ndarray | None = None  # the temp track (previz.generate.voice), if any


def _temp_track(task: ShotTask, record: dict[str, Any]) -> np.ndarray | None:
    """The shot's dialogue and effects as a temp track as long as its frames (the record
    says how it was made), or None when it has neither."""
    if not task.dialogue and not task.sound:
        return None
    from previz.generate.voice import temp_track
    from previz.media.audio import RATE

    samples = round(Fraction(task.num_frames) * RATE / Fraction(task.fps).limit_denominator(1001))
    track, made = temp_track(task.dialogue, task.sound, samples, task.seed)
    record["voice"] = made
    return track


class _FrameMemory:
    """Hands out frame arrays, reusing the previous one's memory once nothing refers to it.

    Filling fresh memory costs more than drawing a frame on some machines (first-touch page
    faults, costly in VMs), so a generator rendering shot after shot keeps one buffer. A result
    still referenced anywhere (any view of it holds the buffer) is never written over.
    """

    def __init__(self) -> None:
        self._buffer: np.ndarray | None = None

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        buffer = self._buffer
        # references: self._buffer, `buffer`, getrefcount's argument — nothing else
        if buffer is not None and buffer.size >= size and sys.getrefcount(buffer) <= 3:
            return buffer[:size].reshape(shape)
        buffer = np.empty(size, np.uint8)
        self._buffer = buffer if buffer.nbytes <= _REUSE_LIMIT else None
        return buffer.reshape(shape)

    def clear(self) -> None:
        self._buffer = None


@dataclass
class _Layer:
    """A picture the camera looks at: one RGB plane, or Y, Cb, Cr planes (chroma at half size).

    `centre` is the home framing's centre in the first plane's pixels; `factor` how far the
    layer travels with the camera (parallax); `card` marks an opaque card pasted over the
    layers beneath it."""

    planes: list[Image.Image]
    centre: tuple[float, float]
    factor: float = 1.0
    card: bool = False

    def as_rgb(self, prefilter: bool) -> _Layer:
        """The layer ready for sampling into RGB frames (prefiltered for moving frames)."""
        rgb = _prefiltered(self.planes[0]) if prefilter else self.planes[0]
        return _Layer([rgb], self.centre, self.factor, self.card)

    def as_ycbcr(self, prefilter: bool) -> _Layer:
        """The layer as Y, Cb, Cr planes for the encoder. Only luma is prefiltered: the
        chroma planes' own 2x2 reduction already smooths them (and a third of the blur is a
        sizeable part of a draft take's time)."""
        y, cb, cr = (self.planes[0].convert("L", matrix) for matrix in _YCBCR_709)
        y = _prefiltered(y) if prefilter else y
        return _Layer([y, cb.reduce(2), cr.reduce(2)], self.centre, self.factor, self.card)


@dataclass
class _Shot:
    """Everything drawn for one task, ready to be played frame by frame."""

    layers: list[_Layer]
    dissolve: _Layer | None
    views: list[View]
    width: int
    height: int
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def held(self) -> bool:
        """Whether every frame shows the same view (a held frame is sampled with a box
        filter, which needs no prefilter)."""
        return all(view == self.views[0] for view in self.views)

    def ready(self, planes: str) -> _Shot:
        """This shot with its layers ready for sampling as "rgb" or "ycbcr" planes."""
        prefilter = not self.held
        convert = (_Layer.as_rgb if planes == "rgb" else _Layer.as_ycbcr)
        return _Shot([convert(layer, prefilter) for layer in self.layers],
                     convert(self.dissolve, prefilter) if self.dissolve is not None else None,
                     self.views, self.width, self.height, self.record)


class DraftGenerator:
    """Panel or title card, camera move as a 2D move. No weights; CPU only."""

    declaration = GeneratorDeclaration(
        version="1", kind=GeneratorKind.ANIMATIC, options=frozenset({"codec"}),
        encodes_own_output=True, title_in_pixels=True, steps_cost=False,
        digital_source_type="algorithmicMedia")

    def __init__(self, spec: ModelSpec, *, weights: str | None = None,
                 options: dict[str, Any] | None = None):
        self.spec = spec
        self.options = dict(options or {})
        self.device: str | None = None
        self._memory = _FrameMemory()

    @property
    def needs(self) -> GeneratorNeeds:
        return GeneratorNeeds(gpus=0, gpu_memory_gb=0.0)

    def load(self, device: str = "cpu") -> None:
        self.device = device

    def release(self) -> None:
        self.device = None
        self._memory.clear()

    def generate(self, task: ShotTask, *, images: ImageSource = images_from_files,
                 progress: ProgressCallback | None = None, attempt: int = 1) -> GeneratedFrames:
        """1. draw the shot's layers and plan its camera path (`_draw`);
        2. play the path: one resampling per frame into the frame array."""
        started = time.monotonic()
        shot = self._draw(task, images, attempt).ready("rgb")
        frames = self._memory.take((task.num_frames, task.height, task.width, 3))
        for index, (rgb,) in enumerate(_play(shot, progress)):
            frames[index] = np.asarray(rgb)
        shot.record["timings"]["generate_seconds"] = time.monotonic() - started
        return GeneratedFrames(frames=frames, fps=task.fps, record=shot.record,
                               sound=_temp_track(task, shot.record)).check(task)

    def render_take(self, task: ShotTask, path, *, images: ImageSource = images_from_files,
                    progress: ProgressCallback | None = None, attempt: int = 1,
                    codec_settings: CodecSettings | None = None,
                    start_frame: int = 1001) -> DraftTake:
        """Render the task straight into an encoded take at `path` (no retiming: the task's own
        frames, size and rate), sampling the layers as Y/Cb/Cr planes for the encoder.

        Same pictures and moves as `generate()`, without holding every frame in memory or
        converting colours twice: the fast path for draft takes."""
        from previz.media.encode import CODECS, TakeWriter

        started = time.monotonic()
        shot = self._draw(task, images, attempt)
        settings = codec_settings or CODECS[shot.record["codec"]]
        planar = shot.ready("ycbcr")
        fps = Fraction(task.fps).limit_denominator(1001)
        with TakeWriter(Path(path), fps, width=task.width, height=task.height,
                        start_frame=start_frame, codec_settings=settings,
                        source_format="yuv420p") as writer:
            for planes in _play(planar, progress):
                writer.write([plane.tobytes() for plane in planes])
        shot.record["timings"]["generate_seconds"] = time.monotonic() - started
        shot.record["codec"] = settings.name
        return DraftTake(writer.result, shot.record, _temp_track(task, shot.record))

    def _draw(self, task: ShotTask, images: ImageSource, attempt: int) -> _Shot:
        """1. fetch the pictures (panel or earlier frame, last image, references);
        2. plan the camera path; 3. draw the picture layers once."""
        started = time.monotonic()
        width, height = task.width, task.height
        warnings: list[str] = []
        first = _picture(task, "first_image", images)
        last = _picture(task, "last_image", images)
        references = [(c.name or "reference", _fetch(c, images))
                      for c in task.conditioning_for("reference")]

        move = task.camera.move
        if move not in MOVES:
            warnings.append(f"camera move {move!r} unknown to the draft: shown static")
        if first is None:
            mode = "card"
        else:
            mode = "continue" if first[0].path is None and first[0].from_key else "panel"
        views = camera_path(move, speed=task.camera.speed, frames=task.num_frames,
                            fps=task.fps, seed=task.seed, centred=mode == "card",
                            max_zoom=_CARD_MAX_ZOOM if mode == "card" else _PICTURE_MAX_ZOOM)
        if mode == "continue":
            views = _from_home(views)

        if mode == "card":
            layers, card_warnings = _card_layers(task, references, views)
            warnings += card_warnings
        else:
            layers = [_picture_layer(first[1], views, width, height, inside=mode == "panel")]
        dissolve = None
        if last is not None:
            dissolve = _picture_layer(last[1], views, width, height, inside=mode != "continue")
        record = {
            "generator": "draft", "model": self.spec.name, "mode": mode, "move": move,
            "camera": camera_notes(task), "parallax": len(layers) > 1,
            "dissolve_to_last_image": dissolve is not None,
            "prompt": task.shot_prompt, "seed": task.seed, "attempt": attempt,
            "conditioning": [{"role": c.role, "name": c.name, "path": c.path,
                              "from_key": c.from_key} for c in task.conditioning],
            "codec": task_option(task, self.options, "codec", DRAFT_CODEC),
            "warnings": warnings,
            "timings": {"draw_seconds": time.monotonic() - started},
        }
        return _Shot(layers, dissolve, views, width, height, record)


def _fetch(condition: Conditioning, images: ImageSource) -> Image.Image:
    try:
        image = images(condition)
    except GeneratorError:
        raise
    except Exception as exc:  # the engine's source may fail in its own ways
        raise GeneratorError(f"{condition.role} image ({condition.path or condition.from_key}) "
                             f"could not be fetched: {exc}") from exc
    return image.convert("RGB")


def _picture(task: ShotTask, role: str, images: ImageSource):
    found = task.conditioning_for(role)
    if not found:
        return None
    return found[0], _fetch(found[0], images)


def _from_home(views: list[View]) -> list[View]:
    """Shift a path so frame 0 is the home framing (for handheld, which starts anywhere)."""
    if not views:
        return views
    v0 = views[0]
    return [View(x=v.x - v0.x, y=v.y - v0.y, zoom=max(1.0, v.zoom / v0.zoom), roll=v.roll - v0.roll)
            for v in views]


def _extent(views: list[View], width: int, height: int, factor: float = 1.0,
            home: bool = True) -> tuple[float, float, float, float]:
    """The union of every view's rectangle (x0, y0, x1, y1) in output pixels around the home
    centre, with the home frame itself when `home`."""
    x0, y0, x1, y1 = (-width / 2, -height / 2, width / 2, height / 2) if home else (
        math.inf, math.inf, -math.inf, -math.inf)
    for v in views:
        cos, sin = abs(math.cos(v.roll)), abs(math.sin(v.roll))
        half_w = (width / 2 * cos + height / 2 * sin) / v.zoom
        half_h = (width / 2 * sin + height / 2 * cos) / v.zoom
        cx, cy = factor * v.x * width, factor * v.y * height
        x0, y0 = min(x0, cx - half_w), min(y0, cy - half_h)
        x1, y1 = max(x1, cx + half_w), max(y1, cy + half_h)
    margin = 2.0  # output pixels, for the sampling footprint
    return (x0 - margin, y0 - margin, x1 + margin, y1 + margin)


def _prefiltered(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.BoxBlur(_PREFILTER))


def _picture_layer(picture: Image.Image, views: list[View], width: int, height: int, *,
                   inside: bool) -> _Layer:
    """A panel or frame as a layer. `inside`: scaled to cover every view (Ken Burns); otherwise
    placed exactly at the home framing, surrounded by a blurred extension of itself."""
    x0, y0, x1, y1 = _extent(views, width, height, home=not inside)
    size = (math.ceil((x1 - x0) * _SCALE), math.ceil((y1 - y0) * _SCALE))
    centre = (-x0 * _SCALE, -y0 * _SCALE)
    if inside:
        return _Layer([fit_image(picture, *size)], centre)
    backdrop = fit_image(picture, max(2, size[0] // 8), max(2, size[1] // 8))
    backdrop = backdrop.filter(ImageFilter.GaussianBlur(3)).resize(size, Image.Resampling.BILINEAR)
    backdrop = Image.eval(backdrop, lambda v: v // 2)
    home = fit_image(picture, width * _SCALE, height * _SCALE)
    backdrop.paste(home, (round(centre[0] - width * _SCALE / 2),
                          round(centre[1] - height * _SCALE / 2)))
    return _Layer([backdrop], centre)


def _card_layers(task: ShotTask, references, views: list[View]) -> tuple[list[_Layer], list[str]]:
    width, height = task.width, task.height
    card = card_layer(task, references, width, height, _SCALE)
    background_factor, card_factor = PARALLAX.get(task.camera.move, (1.0, 1.0))
    extent = _extent(views, width, height, factor=background_factor)
    background = set_background(task, extent, width, height, _SCALE)
    centre = (-extent[0] * _SCALE, -extent[1] * _SCALE)
    card_at = (round(centre[0] - card.image.width / 2), round(centre[1] - card.image.height / 2))
    if background_factor == card_factor:  # no parallax: one flat picture
        background = background.convert("RGBA")
        background.alpha_composite(card.image, card_at)
        return [_Layer([background.convert("RGB")], centre)], card.warnings
    # Parallax: the card moves over the set on its own. It is made opaque (over the set's colour
    # behind it) so each frame pastes it without blending.
    behind = background.crop((card_at[0], card_at[1], card_at[0] + card.image.width,
                              card_at[1] + card.image.height)).convert("RGBA")
    behind.alpha_composite(card.image)
    card_centre = (card.image.width / 2, card.image.height / 2)
    return [_Layer([background], centre, background_factor),
            _Layer([behind.convert("RGB")], card_centre, card_factor, card=True)
            ], card.warnings


def _sample(image: Image.Image, centre: tuple[float, float], factor: float, view: View,
            width: int, height: int, resample: Image.Resampling) -> Image.Image:
    """What the camera sees of one plane in one view: a single resampling to width x height
    (the plane's own output size)."""
    k = _SCALE / view.zoom
    cx = centre[0] + _SCALE * factor * view.x * width
    cy = centre[1] + _SCALE * factor * view.y * height
    if view.roll == 0.0:
        box = (cx - k * width / 2, cy - k * height / 2, cx + k * width / 2, cy + k * height / 2)
        if box[0] >= 0 and box[1] >= 0 and box[2] <= image.width and box[3] <= image.height:
            return image.resize((width, height), resample, box=box)
    cos, sin = math.cos(view.roll), math.sin(view.roll)
    a, b, d, e = k * cos, -k * sin, k * sin, k * cos
    c = cx - (a * width / 2 + b * height / 2)
    f = cy - (d * width / 2 + e * height / 2)
    if resample == Image.Resampling.BOX:
        resample = Image.Resampling.BILINEAR
    return image.transform((width, height), Image.Transform.AFFINE, (a, b, c, d, e, f), resample)


def _paste_card(frame: Image.Image, card: Image.Image, factor: float, view: View, width: int,
                height: int) -> None:
    """Paste a parallax card plane into a frame plane (both at the plane's own scale)."""
    card_w, card_h = card.width / _SCALE, card.height / _SCALE
    left = width / 2 + (-card_w / 2 - factor * view.x * width) * view.zoom
    top = height / 2 + (-card_h / 2 - factor * view.y * height) * view.zoom
    ix, iy = math.floor(left), math.floor(top)
    box_w, box_h = math.floor(left + card_w * view.zoom) - ix, math.floor(
        top + card_h * view.zoom) - iy
    k = _SCALE / view.zoom
    data = ((ix - left) * k, (iy - top) * k, (ix - left + box_w) * k, (iy - top + box_h) * k)
    region = card.transform((box_w, box_h), Image.Transform.EXTENT, data,
                            Image.Resampling.NEAREST)
    frame.paste(region, (ix, iy))


def _play(shot: _Shot, progress: ProgressCallback | None):
    """Yield each frame's planes (one RGB image, or Y, Cb, Cr) along the camera path."""
    views, total = shot.views, len(shot.views)
    planes = len(shot.layers[0].planes)
    sizes = [(shot.width, shot.height)] if planes == 1 else [
        (shot.width, shot.height), (shot.width // 2, shot.height // 2),
        (shot.width // 2, shot.height // 2)]
    resample = Image.Resampling.BOX if shot.held else _MOVING
    every = max(1, total // _PROGRESS_UPDATES)
    previous_view, previous = None, None
    for index, view in enumerate(views):
        blend = index / (total - 1) if shot.dissolve is not None and total > 1 else 0.0
        if view == previous_view and shot.dissolve is None:
            frame = previous
        else:
            frame = []
            for plane, (width, height) in enumerate(sizes):
                scale = shot.width / width  # 1 for luma or RGB, 2 for chroma
                base = shot.layers[0]
                image = _sample(base.planes[plane], _scaled(base.centre, scale), base.factor,
                                view, width, height, resample)
                for layer in shot.layers[1:]:
                    _paste_card(image, layer.planes[plane], layer.factor, view, width, height)
                if blend > 0:
                    last = shot.dissolve
                    image = Image.blend(image, _sample(last.planes[plane],
                                                       _scaled(last.centre, scale), last.factor,
                                                       view, width, height, resample), blend)
                frame.append(image)
        previous_view, previous = view, frame
        yield frame
        if progress is not None and ((index + 1) % every == 0 or index + 1 == total):
            progress(index + 1, total)


def _scaled(point: tuple[float, float], scale: float) -> tuple[float, float]:
    return (point[0] / scale, point[1] / scale)
