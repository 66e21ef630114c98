"""Build the cut's picture: re-encode the few frames transitions touch, stream-copy the rest.

Every take shares one set of stream parameters (DESIGN §5), and `previz.media.encode` puts a
keyframe every GOP with no B-frames, so a take can be entered at any keyframe and left at any
frame by stream copy. A transition's frames, and a shot's frames from the transition up to its
next keyframe, are composed in RGB and encoded with the same parameters; the concat demuxer
then joins copied runs and encoded pieces in one pass, and the `setts` bitstream filter lays
the timestamps on an exact frame grid.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np

from previz.assemble.edit import CopyPiece, FrameContent, Piece, RenderPiece
from previz.assemble.ffmpeg import AUDIO_RATE, audio_filter, concat_list, iter_rgb, run_ffmpeg
from previz.assemble.mp4 import Mp4Error, VideoTrack, read_video_track
from previz.assemble.pieces import PieceCache, encoding_identity, piece_key
from previz.assemble.types import AssembleError
from previz.media.encode import CodecSettings, encode_take

__all__ = ["render_pieces", "join_pieces", "concat_copy", "encode_workers", "fetched_whole",
           "check_joined", "decoded_frame_count"]


def render_pieces(pieces: Sequence[Piece], media: Sequence[Path], fps: Fraction, width: int,
                  height: int, folder: Path, codec: CodecSettings,
                  jobs: int | None = None, *, content: Sequence[FrameContent] | None = None,
                  cache: PieceCache | None = None) -> tuple[dict[int, Path], set[int]]:
    """Encode every RenderPiece (in parallel); returns piece index -> file, and the indices of
    the pieces fetched from the cache rather than encoded.

    With `content` (what each cut frame shows, see `frame_content`) and a `cache`, a piece
    kept from an earlier cut is fetched instead of encoded, and a new one is kept.
    """
    work = [(i, p) for i, p in enumerate(pieces) if isinstance(p, RenderPiece)]
    if not work:
        return {}, set()
    folder.mkdir(parents=True, exist_ok=True)
    workers = encode_workers(jobs)
    identity = (encoding_identity(width, height, fps, codec=codec)
                if cache is not None and content is not None else None)

    reused: set[int] = set()

    def one(item: tuple[int, RenderPiece]) -> tuple[int, Path]:
        index, piece = item
        path = folder / f"piece{index:04d}_{piece.record_in:06d}.mp4"
        key = None
        if identity is not None:
            key = piece_key("transition", {
                **identity,
                "frames": list(content[piece.record_in:piece.record_in + piece.frames])})
            if fetched_whole(cache, key, path, piece.frames):
                reused.add(index)
                return index, path
        encode_take(_composed(piece, media, fps, width, height), fps, path, width=width,
                    height=height, start_frame=1001 + piece.record_in, codec_settings=codec)
        if key is not None:
            cache.keep(key, ".mp4", path)
        return index, path

    if workers == 1 or len(work) == 1:
        return dict(one(item) for item in work), reused
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, work)), reused


def fetched_whole(cache: PieceCache | None, key: str, path: Path, frames: int) -> bool:
    """Whether the piece came from the cache into `path` with all its frames. A damaged piece
    is discarded from the cache, to be encoded again and kept in its place."""
    if cache is None or cache.fetch(key, ".mp4", path) is None:
        return False
    try:
        if read_video_track(path).frames == frames:
            return True
    except Mp4Error:
        pass
    cache.discard(key, ".mp4")
    return False


def encode_workers(jobs: int | None) -> int:
    """Encodes to run at once: `jobs`, else one per CPU, 2 to 4."""
    return jobs or min(4, max(2, os.cpu_count() or 2))


def _composed(piece: RenderPiece, media: Sequence[Path], fps: Fraction, width: int,
              height: int) -> Iterator[np.ndarray]:
    """The piece's frames, each its layers laid over black in order."""
    readers = {shot: _Reader(media[shot], fps, lo, hi - lo, width, height)
               for shot, (lo, hi) in piece.source_ranges().items()}
    try:
        for stack in piece.layers:
            if len(stack) == 1 and stack[0].opaque:
                yield readers[stack[0].shot].frame(stack[0].frame)
                continue
            acc = np.zeros((height, width, 3), np.uint16)  # black below every layer
            for layer in stack:
                image = readers[layer.shot].frame(layer.frame)
                if layer.opaque:
                    acc[...] = image
                    continue
                weight = round(layer.alpha * 256)  # 8-bit fixed point: acc*(1-a) + image*a
                acc *= 256 - weight
                acc += image.astype(np.uint16) * weight
                acc += 128
                acc >>= 8
            yield acc.astype(np.uint8)
    finally:
        for reader in readers.values():
            reader.close()


class _Reader:
    """Frames [start, start + count) of one file, asked for in non-decreasing order."""

    def __init__(self, path: Path, fps: Fraction, start: int, count: int, width: int,
                 height: int):
        self.path = path
        self.next = start
        self.end = start + count
        self.current: np.ndarray | None = None
        self.frames = iter_rgb(path, width, height, fps=fps, start=start, count=count)

    def frame(self, number: int) -> np.ndarray:
        if self.current is not None and number == self.next - 1:
            return self.current
        while self.next <= number:
            try:
                self.current = next(self.frames)
            except StopIteration:
                raise AssembleError(f"{self.path.name} ended before frame {number}") from None
            self.next += 1
        if self.current is None or number != self.next - 1:
            raise AssembleError(f"internal: frame {number} of {self.path.name} asked out of order")
        return self.current

    def close(self) -> None:
        self.frames.close()


def join_pieces(pieces: Sequence[Piece], media: Sequence[Path], media_frames: Sequence[int],
                rendered: dict[int, Path], out: Path, *, fps: Fraction, reference: VideoTrack,
                timecode: str, title: str, audio: tuple[Path, int, int] | None = None,
                list_path: Path) -> None:
    """Join copied runs and encoded pieces into `out` in one ffmpeg pass (see concat_copy)."""
    entries: list[tuple[Path, int | None, int | None]] = []
    for index, piece in enumerate(pieces):
        if isinstance(piece, CopyPiece):
            whole = piece.start == 0 and piece.stop == media_frames[piece.shot]
            entries.append((media[piece.shot], None if whole else piece.start,
                            None if piece.stop == media_frames[piece.shot] else piece.stop))
        else:
            entries.append((rendered[index], None, None))
    concat_copy(entries, out, fps=fps, reference=reference, timecode=timecode, title=title,
                audio=audio, list_path=list_path)


def concat_copy(entries: Sequence[tuple[Path, int | None, int | None]], out: Path, *,
                fps: Fraction, reference: VideoTrack, timecode: str, title: str,
                audio: tuple[Path, int, int] | None, list_path: Path) -> None:
    """Join (file, in frame or None, out frame or None) entries by stream copy into `out`, on
    the exact frame grid of `reference`, with `audio` (file, lead samples, total samples at
    48 kHz) laid under: delayed by the lead, padded or trimmed to the total."""
    list_path.write_text(concat_list(entries, fps), encoding="utf-8")
    delta = reference.deltas[0]
    args = ["-f", "concat", "-safe", "0", "-i", str(list_path)]
    if audio is not None:
        args += ["-i", str(audio[0])]
    args += ["-map", "0:v:0", "-c:v", "copy", "-bsf:v",
             f"setts=ts=N*{delta}:duration={delta}:time_base=1/{reference.timescale}"]
    if audio is not None:
        args += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "192k", "-ar", str(AUDIO_RATE),
                 "-af", audio_filter(audio[1], audio[2])]
    args += ["-timecode", timecode, "-video_track_timescale", str(reference.timescale),
             "-metadata", f"title={title}", "-movflags", "+faststart", "-f", "mp4", str(out)]
    run_ffmpeg(args, f"join {out.name}")


def check_joined(path: Path, *, frames: int, reference: VideoTrack, keyframes: Sequence[int],
                 timecode_frame: int | None) -> VideoTrack:
    """The joined file must hold exactly the plan's frames on an exact grid, with the takes'
    codec configuration and a keyframe where every piece starts."""
    track = read_video_track(path)
    problems = []
    if track.frames != frames:
        problems.append(f"{track.frames} frames, the plan has {frames}")
    if set(track.deltas) != {reference.deltas[0]} or track.timescale != reference.timescale:
        problems.append(f"frame durations {sorted(set(track.deltas))}/{track.timescale}, "
                        f"expected {reference.deltas[0]}/{reference.timescale}")
    if track.config != reference.config:
        problems.append("its codec configuration differs from the takes'")
    missing = sorted(set(keyframes) - set(track.keyframes))
    if missing:
        problems.append(f"no keyframe where pieces start: {missing[:5]}")
    if timecode_frame is not None and track.timecode_frame != timecode_frame:
        problems.append(f"timecode starts at frame {track.timecode_frame}, not {timecode_frame}")
    if problems:
        raise AssembleError(f"the joined cut {path.name} is wrong: {'; '.join(problems)} — "
                            "this is a bug in previz; please report it with the take files")
    return track


def decoded_frame_count(path: Path, width: int, height: int) -> int:
    """Frames a full decode yields (slow: decodes everything)."""
    return sum(1 for _ in iter_rgb(path, width, height))
