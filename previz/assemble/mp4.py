"""Read what the assembly needs from an MP4 without decoding it.

The join decides where it may cut by stream copy from the video track's sample tables: how many
frames there are, which are keyframes, how long each lasts, and the codec configuration (`avcC`,
the SPS and PPS) that every piece of a stream-copied join must share byte for byte. Reading the
boxes takes a millisecond per file; asking ffmpeg would take a process per file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from previz.errors import PrevizError

__all__ = ["Mp4Error", "VideoTrack", "read_video_track"]

# Boxes we descend into on the way to the sample tables.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}
_VISUAL_ENTRIES = {b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4v", b"apch", b"apcn", b"AVdh"}


class Mp4Error(PrevizError):
    """The file is not an MP4/MOV we can read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class VideoTrack:
    """The first video track of a file, from its sample tables."""

    path: Path
    codec: str  # sample entry fourcc: avc1, hvc1, ...
    width: int
    height: int
    timescale: int
    frames: int
    deltas: tuple[int, ...]  # per-sample duration in `timescale` units (run-length expanded)
    keyframes: tuple[int, ...]  # 0-based indices of sync samples
    config: bytes  # the decoder configuration record (avcC/hvcC), b"" if none
    edit_offset: int  # media time the edit list starts at (0 when there is none)
    timecode_frame: int | None  # first frame number of a timecode (tmcd) track, if any
    timecode_rate: int | None  # the tmcd track's frames per second (nominal)

    @property
    def fps(self) -> Fraction | None:
        """The exact frame rate when every frame lasts the same, else None."""
        if not self.deltas or len(set(self.deltas)) != 1:
            return None
        return Fraction(self.timescale, self.deltas[0])


def read_video_track(path: str | Path) -> VideoTrack:
    """The first video track's tables. Raises `Mp4Error` for anything we cannot read."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            moov = _find_top_level(handle, size, b"moov")
            if moov is None:
                raise Mp4Error(f"{path.name} has no 'moov' box — it is not a finished MP4 "
                               "(was the encode interrupted?)")
            handle.seek(moov[0])
            body = handle.read(moov[1])
            tracks = [_parse_trak(t) for t in _children(body, b"trak")]
            timecode = _timecode(handle, tracks)
    except OSError as error:
        raise Mp4Error(f"cannot read {path}: {error.strerror or error}") from None
    except (struct.error, IndexError, ValueError) as error:
        raise Mp4Error(f"{path.name} is not a readable MP4 ({error})") from None
    videos = [t for t in tracks if t["handler"] == b"vide"]
    if not videos:
        raise Mp4Error(f"{path.name} has no video track")
    video = videos[0]
    if video.get("entry") is None:
        raise Mp4Error(f"{path.name}: the video track has no sample description")
    frames = video.get("sample_count", 0)
    deltas = video.get("deltas", ())
    if len(deltas) != frames:
        raise Mp4Error(f"{path.name}: the time table lists {len(deltas)} samples, the size "
                       f"table {frames}")
    keyframes = video.get("sync")
    return VideoTrack(
        path=path,
        codec=video["entry"].decode("latin-1"),
        width=video["width"],
        height=video["height"],
        timescale=video["timescale"],
        frames=frames,
        deltas=tuple(deltas),
        keyframes=tuple(range(frames)) if keyframes is None else tuple(k - 1 for k in keyframes),
        config=video.get("config", b""),
        edit_offset=video.get("edit_offset", 0),
        timecode_frame=timecode[0] if timecode else None,
        timecode_rate=timecode[1] if timecode else None,
    )


# -- box walking ---------------------------------------------------------------------------------


def _find_top_level(handle: BinaryIO, size: int, wanted: bytes) -> tuple[int, int] | None:
    """(offset of the body, body size) of the first top-level box of type `wanted`."""
    offset = 0
    while offset + 8 <= size:
        handle.seek(offset)
        header = handle.read(16)
        box_size, kind = struct.unpack(">I4s", header[:8])
        header_size = 8
        if box_size == 1:
            box_size = struct.unpack(">Q", header[8:16])[0]
            header_size = 16
        elif box_size == 0:
            box_size = size - offset
        if box_size < header_size:
            raise ValueError(f"box {kind!r} at {offset} has size {box_size}")
        if kind == wanted:
            return offset + header_size, box_size - header_size
        offset += box_size
    return None


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, body start, body end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        box_size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if box_size == 1:
            box_size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif box_size == 0:
            box_size = end - offset
        if box_size < header or offset + box_size > end:
            raise ValueError(f"box {kind!r} at {offset} overruns its parent")
        yield kind, offset + header, offset + box_size
        offset += box_size


def _children(data: bytes, kind: bytes) -> list[bytes]:
    return [data[s:e] for k, s, e in _boxes(data) if k == kind]


def _walk(data: bytes, found: dict[bytes, bytes], start: int = 0, end: int | None = None) -> None:
    for kind, body_start, body_end in _boxes(data, start, end):
        if kind in _CONTAINERS:
            _walk(data, found, body_start, body_end)
        elif kind not in found:
            found[kind] = data[body_start:body_end]


def _parse_trak(trak: bytes) -> dict:
    boxes: dict[bytes, bytes] = {}
    _walk(trak, boxes)
    track: dict = {"handler": boxes[b"hdlr"][8:12] if b"hdlr" in boxes else b""}
    mdhd = boxes.get(b"mdhd")
    if mdhd is not None:
        track["timescale"] = struct.unpack_from(">I", mdhd, 20 if mdhd[0] == 1 else 12)[0]
    if b"stsd" in boxes:
        _parse_stsd(boxes[b"stsd"], track)
    if b"stts" in boxes:
        stts = boxes[b"stts"]
        deltas: list[int] = []
        for index in range(struct.unpack_from(">I", stts, 4)[0]):
            count, delta = struct.unpack_from(">II", stts, 8 + 8 * index)
            deltas.extend([delta] * count)
        track["deltas"] = deltas
    if b"stsz" in boxes:
        stsz = boxes[b"stsz"]
        track["sample_count"] = struct.unpack_from(">I", stsz, 8)[0]
    if b"stss" in boxes:
        stss = boxes[b"stss"]
        count = struct.unpack_from(">I", stss, 4)[0]
        track["sync"] = list(struct.unpack_from(f">{count}I", stss, 8))
    if b"stco" in boxes:
        stco = boxes[b"stco"]
        if struct.unpack_from(">I", stco, 4)[0]:
            track["first_chunk"] = struct.unpack_from(">I", stco, 8)[0]
    elif b"co64" in boxes:
        co64 = boxes[b"co64"]
        if struct.unpack_from(">I", co64, 4)[0]:
            track["first_chunk"] = struct.unpack_from(">Q", co64, 8)[0]
    if b"elst" in boxes:
        elst = boxes[b"elst"]
        version = elst[0]
        count = struct.unpack_from(">I", elst, 4)[0]
        offset = 0
        for index in range(count):
            if version == 1:
                _, media_time = struct.unpack_from(">Qq", elst, 8 + 20 * index)
            else:
                _, media_time = struct.unpack_from(">Ii", elst, 8 + 12 * index)
            if media_time >= 0:  # -1 marks an empty edit (a delay); the first real one counts
                offset = media_time
                break
        track["edit_offset"] = offset
    return track


def _parse_stsd(stsd: bytes, track: dict) -> None:
    # full box header (4) + entry count (4), then sample entries
    for kind, start, end in _boxes(stsd, 8):
        if kind in _VISUAL_ENTRIES:
            # SampleEntry: 6 reserved + 2 data ref; VisualSampleEntry: 16 predefined, then size
            track["entry"] = kind
            track["width"], track["height"] = struct.unpack_from(">HH", stsd, start + 24)
            # 78 bytes of VisualSampleEntry fields, then child boxes (avcC, colr, pasp, ...)
            for child, child_start, child_end in _boxes(stsd, start + 78, end):
                if child in (b"avcC", b"hvcC"):
                    track["config"] = stsd[child_start:child_end]
        elif kind == b"tmcd":
            # 6 reserved + 2 data ref + 4 reserved + 4 flags + timescale + frame duration + count
            timescale, duration, number = struct.unpack_from(">IIB", stsd, start + 16)
            track["entry"] = kind
            track["tmcd_rate"] = number or round(timescale / max(duration, 1))
        break


def _timecode(handle: BinaryIO, tracks: list[dict]) -> tuple[int, int] | None:
    for track in tracks:
        if track.get("entry") == b"tmcd" and "first_chunk" in track:
            handle.seek(track["first_chunk"])
            data = handle.read(4)
            if len(data) == 4:
                return struct.unpack(">I", data)[0], track["tmcd_rate"]
    return None
