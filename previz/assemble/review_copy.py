"""The review copy — the cut with burn-ins under a slate — joined from per-shot pieces, and the
thumbnails the contact sheet and the review page show.

A shot's piece is the cut frames it owns, from its record in up to the next shot's (a
dissolve's frames belong to the incoming shot, whose burn-ins they carry), with the burn-ins
drawn on. Its key (`previz.assemble.pieces`) holds what each of those frames shows (media
identity, source frame, opacity), the burn-in text (the label, and the first frame's record
number, source number and timecode: the rest count on from there), the codecs and the ffmpeg
build — so an edit encodes again only the pieces of the shots it changed or moved. The slate
names the version and is encoded every time. The pieces are joined by stream copy (each starts on
a keyframe, all come from one encoder with one set of parameters) with the audio bed laid under
in the same pass.

A thumbnail is the frame in the middle of a shot, scaled to the thumbnail width: taken from the
pieces as they are encoded, else from the cache, else decoded on its own from the cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from previz.assemble import cards
from previz.assemble.edit import FrameContent, timecode_frames
from previz.assemble.ffmpeg import audio_samples, iter_rgb
from previz.assemble.join import check_joined, concat_copy, encode_workers, fetched_whole
from previz.assemble.mp4 import read_video_track
from previz.assemble.pieces import PieceCache, encoding_identity, piece_key
from previz.assemble.types import AssembleError
from previz.media.encode import CodecSettings, encode_take
from previz.storyboard.timing import timecode

__all__ = ["ReviewShot", "ReviewReport", "review_copy"]


@dataclass(frozen=True)
class ReviewShot:
    """What the review copy needs of one shot."""

    label: cards.ShotLabel
    owns: tuple[int, int]  # the cut frames [in, out) that carry its burn-ins
    record_in: int  # where its media starts in the cut (its source frames count from here)
    thumbnail_frame: int  # the cut frame its thumbnail shows


@dataclass(frozen=True)
class ReviewReport:
    """How the review copy was made: frames encoded for this version and frames reused."""

    encoded_frames: int
    reused_frames: int
    pieces: int
    encoded_pieces: int


@dataclass(frozen=True)
class _Format:
    width: int
    height: int
    fps: Fraction
    timecode_start: int  # frame number of the cut's first frame's timecode
    source_start: int  # source frame number of a shot's first frame


def review_copy(*, cut: Path, out: Path | None, shots: Sequence[ReviewShot],
                content: Sequence[FrameContent], width: int, height: int, fps: Fraction,
                timecode_start: str, source_start: int, slate: np.ndarray | None,
                slate_frames: int, codec: CodecSettings, cut_codec: CodecSettings,
                audio: tuple[Path, int, int] | None, scratch: Path, jobs: int | None,
                thumbnail_width: int, cache: PieceCache | None
                ) -> tuple[list[np.ndarray], ReviewReport | None]:
    """Encode the review copy into `out` (when given) from the joined `cut`, and return one
    thumbnail per shot (thumbnail_width wide)."""
    form = _Format(width, height, fps, timecode_frames(timecode_start, fps), source_start)
    scratch.mkdir(parents=True, exist_ok=True)
    identity = encoding_identity(width, height, fps, cut_codec=cut_codec)
    # 1. the thumbnails already kept
    thumb_keys = [piece_key("thumbnail", {**identity, "width": thumbnail_width,
                                          "frame": content[s.thumbnail_frame]}) for s in shots]
    thumbs: list[np.ndarray | None] = [_fetch_thumbnail(cache, key, scratch / f"thumb{i}.png")
                                       for i, key in enumerate(thumb_keys)]
    fresh = [i for i, thumb in enumerate(thumbs) if thumb is None]
    report = None
    if out is not None:
        # 2. the pieces: kept ones fetched, the rest encoded (taking thumbnails on the way)
        identity = encoding_identity(width, height, fps, cut_codec=cut_codec, codec=codec)
        piece_keys = [piece_key("review", {
            **identity, "frames": list(content[s.owns[0]:s.owns[1]]),
            "label": asdict(s.label), "record": s.owns[0],
            "source": form.source_start + s.owns[0] - s.record_in,
            "timecode": form.timecode_start + s.owns[0]}) for s in shots]
        pieces, encoded = _pieces(cut, shots, piece_keys, thumbs, thumbnail_width, form, codec,
                                  scratch, jobs, cache)
        # 3. the slate, then everything joined by stream copy with the audio under it
        _join(pieces, shots, out, slate, slate_frames, form, codec, audio, scratch)
        slate_pieces = 1 if slate_frames else 0
        encoded_frames = sum(shots[i].owns[1] - shots[i].owns[0] for i in encoded)
        report = ReviewReport(encoded_frames=slate_frames + encoded_frames,
                              reused_frames=len(content) - encoded_frames,
                              pieces=len(shots) + slate_pieces,
                              encoded_pieces=len(encoded) + slate_pieces)
    # 4. the thumbnails still missing, each decoded from the cut; all new ones kept
    missing = [i for i in fresh if thumbs[i] is None]
    def decoded(index: int) -> np.ndarray:
        return cards.scaled(_cut_frame(cut, shots[index].thumbnail_frame, form), thumbnail_width)

    with ThreadPoolExecutor(max_workers=encode_workers(jobs)) as pool:
        for index, thumb in zip(missing, pool.map(decoded, missing), strict=True):
            thumbs[index] = thumb
    if cache is not None:
        for index in fresh:
            path = scratch / f"thumb{index}.png"
            cards.png_file(thumbs[index], path)
            cache.keep(thumb_keys[index], ".png", path)
    return [t for t in thumbs if t is not None], report


def _pieces(cut: Path, shots: Sequence[ReviewShot], keys: Sequence[str],
            thumbs: list[np.ndarray | None], thumbnail_width: int, form: _Format,
            codec: CodecSettings, scratch: Path, jobs: int | None,
            cache: PieceCache | None) -> tuple[list[Path], set[int]]:
    """Each shot's piece file, and which of them were encoded now."""
    paths = [scratch / f"review{i:04d}.mp4" for i in range(len(shots))]
    wanted = [i for i, (path, shot, key) in enumerate(zip(paths, shots, keys, strict=True))
              if not fetched_whole(cache, key, path, shot.owns[1] - shot.owns[0])]
    takes_thumbnail = {shot.thumbnail_frame: i for i, shot in enumerate(shots)
                       if thumbs[i] is None}

    def encode(index: int) -> None:
        shot = shots[index]
        burn = cards.BurnIn(form.width, form.height)

        def frames():
            first, end = shot.owns
            for number, frame in enumerate(iter_rgb(cut, form.width, form.height, fps=form.fps,
                                                    start=first, count=end - first),
                                           start=first):
                if number in takes_thumbnail:
                    thumbs[takes_thumbnail[number]] = cards.scaled(frame, thumbnail_width)
                burn.draw(frame, shot.label, timecode(form.timecode_start + number, form.fps),
                          f"src {form.source_start + number - shot.record_in}   "
                          f"rec {number:05d}")
                yield frame

        encode_take(frames(), form.fps, paths[index], width=form.width, height=form.height,
                    start_frame=form.timecode_start + shot.owns[0], codec_settings=codec)
        if cache is not None:
            cache.keep(keys[index], ".mp4", paths[index])

    with ThreadPoolExecutor(max_workers=encode_workers(jobs)) as pool:
        list(pool.map(encode, wanted))
    return paths, set(wanted)


def _join(pieces: Sequence[Path], shots: Sequence[ReviewShot], out: Path,
          slate: np.ndarray | None, slate_frames: int, form: _Format, codec: CodecSettings,
          audio: tuple[Path, int, int] | None, scratch: Path) -> None:
    first = max(0, form.timecode_start - slate_frames)
    files = list(pieces)
    if slate_frames:
        slate_path = scratch / "slate.mp4"
        encode_take((slate for _ in range(slate_frames)), form.fps, slate_path,
                    width=form.width, height=form.height, start_frame=first,
                    codec_settings=codec)
        files.insert(0, slate_path)
    reference = read_video_track(files[0])
    odd = [path.name for path in files if read_video_track(path).config != reference.config]
    if odd:  # one encoder and one key per build: only a damaged cache gets here
        raise AssembleError(f"review pieces {', '.join(odd)} were encoded with other stream "
                            "parameters — delete the store's pieces/ folder (a cache) and "
                            "render again")
    lead = audio[1] if audio else 0
    concat_copy([(path, None, None) for path in files], out, fps=form.fps, reference=reference,
                timecode=timecode(first, form.fps), title=out.stem,
                audio=(audio[0], lead + audio_samples(slate_frames, form.fps),
                       audio_samples(slate_frames, form.fps) + audio[2]) if audio else None,
                list_path=scratch / "review.txt")
    starts = [slate_frames + shot.owns[0] for shot in shots]
    check_joined(out, frames=slate_frames + sum(s.owns[1] - s.owns[0] for s in shots),
                 reference=reference, keyframes=[0, *starts], timecode_frame=first)


def _fetch_thumbnail(cache: PieceCache | None, key: str, path: Path) -> np.ndarray | None:
    if cache is None or cache.fetch(key, ".png", path) is None:
        return None
    try:
        return cards.read_png(path)
    except OSError:
        cache.discard(key, ".png")  # damaged: taken again and kept in its place
        return None


def _cut_frame(cut: Path, number: int, form: _Format) -> np.ndarray:
    for frame in iter_rgb(cut, form.width, form.height, fps=form.fps, start=number, count=1):
        return frame
    raise AssembleError(f"{cut.name} has no frame {number} — this is a bug in previz")
