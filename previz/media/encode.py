"""Encode frames into a take file, and read takes back.

Every take previz writes has the same stream parameters — codec, profile, level, pixel format,
colour tags, GOP, header options — so takes of one size and rate join by stream copy. Frames are
piped raw (rgb24) into the ffmpeg binary shipped by imageio-ffmpeg (or `$PREVIZ_FFMPEG`); the
command line is built with ffmpeg-python.

H.264 comes in two speeds with identical headers (SPS/PPS): `H264` (the default, for model
takes) and `H264_FAST` (for draft animatics, which must encode faster than real time on one
core). Only options that change slice data differ between them; `tests/media` checks the headers
stay byte-identical.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from previz.errors import PrevizError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "CodecSettings",
    "H264",
    "H264_FAST",
    "PRORES_422",
    "DNXHR_HQ",
    "DEFAULT",
    "CODECS",
    "pipe_rgb_frames",
    "file_sha256",
    "EncodedTake",
    "EncodeError",
    "TakeWriter",
    "VideoInfo",
    "encode_take",
    "decode_frames",
    "iter_frames",
    "last_frame",
    "thumbnail",
    "probe_video",
    "timecode_of",
    "h264_level",
    "ffmpeg_exe",
]

START_FRAME = 1001


class EncodeError(PrevizError):
    """ffmpeg failed to encode or decode; the message carries the end of its log."""


@dataclass(frozen=True)
class CodecSettings:
    """One fixed set of stream parameters. Takes encoded with settings of the same `join_group`
    (and the same size and rate) can be joined by stream copy."""

    name: str
    codec: str
    container: str  # "mp4" or "mov"
    pix_fmt: str
    join_group: str
    profile: str | None = None
    preset: str | None = None
    crf: int | None = None
    gop: int = 24
    x264_params: tuple[tuple[str, str], ...] = ()
    extra: tuple[tuple[str, str], ...] = ()
    scale_flags: str = "bicubic"
    colour: str = "bt709"

    @property
    def suffix(self) -> str:
        return "." + self.container


# Options that shape the H.264 headers (SPS/PPS): identical in every take, so takes join by
# stream copy. No B-frames (decode order is display order: frame-exact cutting and joining), one
# reference frame, CAVLC, 8x8 transforms (High profile), a fixed GOP with a closed IDR at the
# first frame and no scene-cut keyframes, and `stitchable` so the PPS does not depend on the
# content or the CRF. CAVLC and one reference frame are chosen for the draft's sake: they cost
# model takes about a quarter more bytes at the same quality, and they are what lets a draft
# animatic encode at several times real time on one core (CABAC alone costs it ~30%).
_H264_HEADERS: tuple[tuple[str, str], ...] = (
    ("cabac", "0"), ("8x8dct", "1"), ("ref", "1"), ("bframes", "0"), ("weightp", "0"),
    ("stitchable", "1"), ("scenecut", "0"), ("open-gop", "0"),
)

H264 = CodecSettings(
    name="h264", codec="libx264", container="mp4", pix_fmt="yuv420p", join_group="h264-high",
    profile="high", preset="medium", crf=18, gop=24, x264_params=_H264_HEADERS,
)
# Same headers, much less analysis, for draft animatics. Psy-RD is off at this speed, so x264
# does not lower the chroma QP offset by itself as it does for H264: set the offset it uses
# there (-2) explicitly. CRF is not in the headers (stitchable): 20 keeps card text crisp.
H264_FAST = replace(
    H264, name="h264-fast", preset="ultrafast", crf=20,
    x264_params=_H264_HEADERS + (("chroma-qp-offset", "-2"),), scale_flags="bilinear",
)
PRORES_422 = CodecSettings(
    name="prores422", codec="prores_ks", container="mov", pix_fmt="yuv422p10le",
    join_group="prores422", profile="2", gop=1,
)
DNXHR_HQ = CodecSettings(
    name="dnxhr-hq", codec="dnxhd", container="mov", pix_fmt="yuv422p", join_group="dnxhr-hq",
    profile="dnxhr_hq", gop=1,
)
DEFAULT = H264
CODECS: dict[str, CodecSettings] = {c.name: c for c in (H264, H264_FAST, PRORES_422, DNXHR_HQ)}


@dataclass(frozen=True)
class EncodedTake:
    path: Path
    frames: int
    sha256: str
    fps: Fraction
    width: int
    height: int
    codec: str
    timecode: str
    settings: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    codec: str


def ffmpeg_exe() -> str:
    """The ffmpeg binary: `$PREVIZ_FFMPEG`, else the one imageio-ffmpeg ships."""
    configured = os.environ.get("PREVIZ_FFMPEG")
    if configured:
        return configured
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def encoder_identity() -> str:
    """The ffmpeg build that encodes, as its `-version` line says: part of every cached
    assembly piece's key, so a piece another build encoded (other stream headers, perhaps) is
    never joined with this build's."""
    return _version_line(ffmpeg_exe())


@functools.lru_cache(maxsize=8)
def _version_line(exe: str) -> str:
    done = subprocess.run([exe, "-hide_banner", "-version"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace")
    return (done.stdout.splitlines() or [exe])[0].strip()


def timecode_of(frame: int, fps: Fraction) -> str:
    """Non-drop-frame SMPTE timecode HH:MM:SS:FF of a frame number, counting at round(fps)
    frames a second (24 for 24000/1001): frame 1001 at 24 fps is 00:00:41:17."""
    if frame < 0:
        raise ValueError(f"frame number {frame} is negative")
    base = round(Fraction(fps))
    if base <= 0:
        raise ValueError(f"frame rate {fps} is not positive")
    seconds, frames = divmod(frame, base)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours % 24:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


# (level, max macroblocks per frame, max macroblocks per second)
_H264_LEVELS = (("4.1", 8192, 245760), ("4.2", 8704, 522240), ("5.1", 36864, 983040),
                ("5.2", 36864, 2073600), ("6.1", 139264, 8355840), ("6.2", 139264, 16711680))


def h264_level(width: int, height: int, fps: Fraction) -> str:
    """The H.264 level for a size and rate: 4.1 up to 1080p30, so most cuts share one level."""
    macroblocks = -(-width // 16) * -(-height // 16)
    rate = macroblocks * float(fps)
    for level, frame_limit, rate_limit in _H264_LEVELS:
        if macroblocks <= frame_limit and rate <= rate_limit:
            return level
    raise ValueError(f"{width}x{height} at {fps} fps is beyond H.264 level 6.2")


def encode_take(frames: Iterable[np.ndarray] | np.ndarray, fps: Fraction | int | str, path,
                *, width: int, height: int, start_frame: int = START_FRAME,
                codec_settings: CodecSettings = DEFAULT) -> EncodedTake:
    """Encode RGB frames (T, H, W, 3) uint8 into `path` at exactly `fps`, width x height.

    1. look at the first frame: its size decides whether ffmpeg scales to cover and crops;
    2. open a TakeWriter (fixed codec parameters, timecode of `start_frame`, +faststart);
    3. pipe every frame in; 4. close: the file moves into place, hashed.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"no frames to encode into {Path(path).name}")
    first = _checked_frame(first, None, 0)
    with TakeWriter(path, fps, width=width, height=height, start_frame=start_frame,
                    codec_settings=codec_settings,
                    source_size=(first.shape[1], first.shape[0])) as writer:
        writer.write(first)
        for frame in iterator:
            writer.write(frame)
    return writer.result


class TakeWriter:
    """Streams frames into ffmpeg, one at a time, and finishes a take file.

    Sources are rgb24 frames (H, W, 3) of `source_size` (scaled to cover and centre-cropped
    when that is not width x height), or, for renderers that already work in the delivery
    colour space, `source_format="yuv420p"`: planar Y, Cb, Cr bytes at width x height,
    BT.709 limited range, written to the encoder as they are.

        with TakeWriter(path, fps, width=1280, height=720) as writer:
            for frame in frames:
                writer.write(frame)
        take = writer.result

    An exception inside the block (or an ffmpeg failure) leaves no file behind.
    """

    def __init__(self, path, fps: Fraction | int | str, *, width: int, height: int,
                 start_frame: int = START_FRAME, codec_settings: CodecSettings = DEFAULT,
                 source_size: tuple[int, int] | None = None, source_format: str = "rgb24"):
        import ffmpeg

        self.path = Path(path)
        self.fps = Fraction(fps)
        self.settings = settings = codec_settings
        self.width, self.height = width, height
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if width <= 0 or height <= 0 or (settings.pix_fmt.startswith("yuv420")
                                         and (width % 2 or height % 2)):
            raise ValueError(f"{settings.name} needs a positive, even size, got "
                             f"{width}x{height}")
        if source_format not in ("rgb24", "yuv420p"):
            raise ValueError(f"source_format must be rgb24 or yuv420p, got {source_format!r}")
        source_size = source_size or (width, height)
        if source_format == "yuv420p" and source_size != (width, height):
            raise ValueError("yuv420p sources must already be width x height")
        self.source_format = source_format
        self.source_size = source_size
        self.frame_bytes = (width * height * 3 // 2 if source_format == "yuv420p"
                            else source_size[0] * source_size[1] * 3)
        self.timecode = timecode_of(start_frame, self.fps)
        self.frames = 0
        self.result: EncodedTake | None = None

        stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=source_format,
                              s=f"{source_size[0]}x{source_size[1]}", framerate=str(self.fps))
        colour = {"out_color_matrix": settings.colour, "out_range": "tv",
                  "flags": settings.scale_flags}
        if source_format == "rgb24" and source_size == (width, height):
            stream = stream.filter("scale", **colour)
        elif source_format == "rgb24":
            stream = stream.filter("scale", width, height, force_original_aspect_ratio="increase",
                                   **colour).filter("crop", width, height)
        # Tag every frame: the encoder writes the frames' colour description into the stream
        # header, and `scale` sets only the matrix, so RGB and YUV sources would otherwise
        # differ there and their takes could not be joined by stream copy.
        stream = stream.filter("setparams", range="tv", colorspace=settings.colour,
                               color_primaries=settings.colour, color_trc=settings.colour)
        stream = stream.filter("setsar", 1).filter("format", settings.pix_fmt)
        self.output_options = _output_options(settings, width, height, self.fps, self.timecode)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(prefix=f".{self.path.stem}-",
                                                  suffix=settings.suffix, dir=self.path.parent)
        os.close(handle)
        args = ffmpeg.output(stream, self.temporary, **self.output_options).compile(
            cmd=ffmpeg_exe(), overwrite_output=True)
        args[1:1] = ["-hide_banner", "-loglevel", "error", "-nostats"]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close() or abort()
        self._broken = False
        try:
            self._process = subprocess.Popen(args, stdin=subprocess.PIPE,
                                             stdout=subprocess.DEVNULL, stderr=self._log)
        except OSError as exc:
            self._cleanup()
            raise EncodeError(f"cannot start ffmpeg ({args[0]}): {exc}") from exc

    def write(self, frame) -> None:
        """Write one frame: an (H, W, 3) uint8 RGB array; for yuv420p sources, the frame's
        bytes, or its Y, Cb, Cr planes as a sequence of buffers."""
        if self.source_format == "rgb24":
            frame = _checked_frame(frame, (self.source_size[1], self.source_size[0]),
                                   self.frames)
        parts = frame if isinstance(frame, (list, tuple)) else [frame]
        views = [memoryview(part).cast("B") for part in parts]
        size = sum(len(view) for view in views)
        if size != self.frame_bytes:
            raise ValueError(f"frame {self.frames}: {size} bytes, expected "
                             f"{self.frame_bytes} ({self.source_format})")
        if not self._broken:
            try:
                for view in views:
                    self._process.stdin.write(view)
            except BrokenPipeError:  # ffmpeg stopped; close() reports why
                self._broken = True
        self.frames += 1

    def close(self) -> EncodedTake:
        """Finish the file: wait for ffmpeg, move the file into place, hash it."""
        try:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
            returncode = self._process.wait()
            if returncode != 0 or self.frames == 0:
                self._log.seek(0)
                why = _tail(self._log.read()) if returncode else "no frames were written"
                raise EncodeError(f"ffmpeg could not encode {self.path.name} "
                                  f"({self.settings.name}, {self.frames} frames written): {why}")
            os.replace(self.temporary, self.path)
        finally:
            self._cleanup()
        settings = self.settings
        self.result = EncodedTake(
            path=self.path, frames=self.frames, sha256=file_sha256(self.path), fps=self.fps,
            width=self.width, height=self.height, codec=settings.name, timecode=self.timecode,
            settings={"codec": settings.codec, "profile": settings.profile,
                      "level": self.output_options.get("level:v"), "crf": settings.crf,
                      "preset": settings.preset, "gop": settings.gop,
                      "pix_fmt": settings.pix_fmt, "join_group": settings.join_group})
        return self.result

    def abort(self) -> None:
        """Stop ffmpeg and leave no file."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if os.path.exists(self.temporary):
            os.unlink(self.temporary)
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> TakeWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _output_options(settings: CodecSettings, width: int, height: int, fps: Fraction,
                    timecode: str) -> dict[str, object]:
    options: dict[str, object] = {
        "format": settings.container,
        "c:v": settings.codec,
        "pix_fmt": settings.pix_fmt,
        "color_primaries": settings.colour,
        "color_trc": settings.colour,
        "colorspace": settings.colour,
        "color_range": "tv",
        "timecode": timecode,
        "movflags": "+faststart",
        "video_track_timescale": fps.numerator * (1000 if fps.denominator == 1 else 1),
        "an": None,
    }
    if settings.profile:
        options["profile:v"] = settings.profile
    if settings.codec == "libx264":
        gop = settings.gop
        params = dict(settings.x264_params)
        params.update({"keyint": str(gop), "min-keyint": str(gop)})
        options.update({
            "level:v": h264_level(width, height, fps),
            "preset": settings.preset,
            "crf": settings.crf,
            "g": gop,
            "flags": "+cgop",
            "x264-params": ":".join(f"{k}={v}" for k, v in params.items()),
        })
    for key, value in settings.extra:
        options[key] = value
    return {k: v for k, v in options.items() if v is not None or k == "an"}


def _checked_frame(frame, size: tuple[int, int] | None, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame {index}: expected (H, W, 3) uint8 RGB, got {frame.dtype} "
                         f"{frame.shape}")
    if size is not None and frame.shape[:2] != size:
        raise ValueError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                         f"was {size[1]}x{size[0]}: a take's frames must share one size")
    return np.ascontiguousarray(frame)


def _tail(log: bytes, lines: int = 12) -> str:
    text = log.decode("utf-8", "replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no log)"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Reading takes back


_SIZE = re.compile(r"Stream #\d+:\d+.*?: Video: ([\w-]+).*?[ ,](\d{2,5})x(\d{2,5})[ ,\[]")


def probe_video(path) -> VideoInfo:
    """Size and codec of the first video stream (from ffmpeg's description of the file)."""
    path = Path(path)
    if not path.is_file():
        raise EncodeError(f"no video file at {path}")
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                            stdin=subprocess.DEVNULL, capture_output=True)
    text = result.stderr.decode("utf-8", "replace")
    for line in text.splitlines():
        match = _SIZE.search(line)
        if match:
            return VideoInfo(width=int(match.group(2)), height=int(match.group(3)),
                             codec=match.group(1))
    raise EncodeError(f"{path.name} has no video stream ffmpeg can read: {_tail(result.stderr)}")


def iter_frames(path, *, seek_from_end: float | None = None) -> Iterator[np.ndarray]:
    """Decode a video file's frames one by one as (H, W, 3) uint8 RGB."""
    info = probe_video(path)
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin"]
    if seek_from_end is not None:
        args += ["-sseof", f"-{seek_from_end:g}"]
    args += ["-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo",
             "-pix_fmt", "rgb24", "pipe:"]
    yield from pipe_rgb_frames(args, info.width, info.height, Path(path).name)


def pipe_rgb_frames(args: list[str], width: int, height: int, name: str,
                    error: type[Exception] = EncodeError) -> Iterator[np.ndarray]:
    """Run an ffmpeg decode writing raw rgb24 to stdout; yield writable (H, W, 3) frames.
    ffmpeg's stderr goes to a file, so a chatty decoder never blocks the pipe."""
    size = width * height * 3
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=log)
        try:
            while True:
                data = process.stdout.read(size)
                if len(data) < size:
                    break
                yield np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()
        finally:
            process.stdout.close()
            if process.poll() is None:
                process.kill()
            returncode = process.wait()
        if returncode not in (0, -9):
            log.seek(0)
            raise error(f"ffmpeg could not decode {name}: {_tail(log.read())}")


def decode_frames(path) -> np.ndarray:
    """Every frame of a video file as one (T, H, W, 3) uint8 RGB array."""
    frames = list(iter_frames(path))
    if not frames:
        raise EncodeError(f"{Path(path).name} has no frames")
    return np.stack(frames)


def last_frame(path) -> Image.Image:
    """The last frame of a take, as a PIL RGB image (decodes only the last seconds)."""
    from PIL import Image

    frame = None
    for frame in iter_frames(path, seek_from_end=2.0):  # noqa: B007 - keep the last
        pass
    if frame is None:  # a seek past a very short file: decode it all
        for frame in iter_frames(path):  # noqa: B007
            pass
    if frame is None:
        raise EncodeError(f"{Path(path).name} has no frames")
    return Image.fromarray(frame, "RGB")


def thumbnail(frames: np.ndarray | Iterable[np.ndarray], *, width: int = 320,
              quality: int = 85) -> bytes:
    """JPEG bytes of the middle frame, `width` pixels wide."""
    from PIL import Image

    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        frame = frames
    else:
        sequence = frames if isinstance(frames, np.ndarray) else list(frames)
        if len(sequence) == 0:
            raise ValueError("no frames to make a thumbnail of")
        frame = sequence[len(sequence) // 2]
    image = Image.fromarray(np.asarray(frame, np.uint8), "RGB")
    height = max(1, round(image.height * width / image.width))
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()
