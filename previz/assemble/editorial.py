"""The cut files editors import: `.otio` (the full truth), CMX 3600 `.edl` (Avid) and FCP 7
`.xml` (Premiere, Resolve).

One OpenTimelineIO timeline is built from the cut, and every file is written from it:

- one video track; each shot is a clip named for its media file (`SH0010_t2.mp4`), referenced
  relatively, so the version folder can be moved; source frames start at 1001 and the record
  timecode at 01:00:00:00 (the timeline's global start time);
- transitions are placed the way CMX 3600 places them: the edit point is where the dissolve
  *starts*, the outgoing clip runs on in its handle (in_offset 0, out_offset = length); a fade
  from black is a transition from nothing (a zero-length gap in the middle of the sequence), a
  fade to black one into a gap of black as long as the fade, the shot's last frames in its
  handle;
- each clip's metadata["previz"] carries the prompt, seed, model, take key and status; notes are
  markers on the clip's first frame.

The EDL is written here rather than by the OTIO CMX adapter, which writes record timecode from
00:00:00:00, misplaces a fade from black in the middle of a sequence and cannot read back the
fade in at the head it writes. Ours is Avid style (`FCM: NON-DROP FRAME`, 8-character reels,
`* FROM CLIP NAME:` comments) and reads back with the OTIO adapter to the same clips and media
(each event names the file of the clip it brings in, `* FROM CLIP:`). A fade in at the head is
the standard pair (`001 BL C` then `001 … D 012`), which that reader refuses ("transitions can't
be at the very beginning of a track"): `read_cut_file` reads it with a zero-length black event
before it, the file keeps the standard form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from previz.assemble.types import CutShot

__all__ = ["build_timeline", "write_otio", "write_edl", "write_fcp_xml", "edl_text",
           "timeline_clips", "read_cut_file"]


def _rt(frames: int | float, rate: float) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, rate)


def _range(start: int, duration: int, rate: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(_rt(start, rate), _rt(duration, rate))


def build_timeline(*, name: str, shots: Sequence[CutShot], fps: Fraction, frames: int,
                   start_frame: int, source_start: int = 1001,
                   audio: tuple[str, int] | None = None,
                   metadata: dict[str, Any] | None = None) -> otio.schema.Timeline:
    """The cut as an OTIO timeline. `audio` is (file name, frames) of the audio bed."""
    rate = float(fps)
    timeline = otio.schema.Timeline(name=name, global_start_time=_rt(start_frame, rate),
                                    metadata={"previz": dict(metadata or {})})
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for position, shot in enumerate(shots):
        following = shots[position + 1] if position + 1 < len(shots) else None
        visible = (following.record_in - shot.record_in
                   if following is not None and following.transition == "dissolve"
                   else shot.frames - shot.fade_out)
        if shot.transition in ("dissolve", "fade_from_black"):
            if shot.transition == "fade_from_black" and position > 0:
                track.append(otio.schema.Gap(source_range=_range(0, 0, rate)))
            track.append(otio.schema.Transition(
                name=f"{shot.transition} to {shot.media}",
                transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=_rt(0, rate), out_offset=_rt(shot.transition_frames, rate),
                metadata={"previz": {"type": shot.transition, "frames": shot.transition_frames},
                          "fcp_xml": {"alignment": "start-black"
                                      if shot.transition == "fade_from_black" else "start"}}))
        clip = otio.schema.Clip(
            name=shot.media,
            media_reference=otio.schema.ExternalReference(
                target_url=shot.media,
                available_range=_range(source_start, shot.frames, rate)),
            source_range=_range(source_start, visible, rate),
            metadata={"previz": _clip_metadata(shot)},
        )
        if shot.notes:
            clip.markers.append(otio.schema.Marker(
                name=shot.notes, marked_range=_range(source_start, 0, rate),
                color=otio.schema.MarkerColor.RED, comment=shot.notes,
                metadata={"previz": {"note": shot.notes, "shot": shot.id}}))
        for note in shot.review_notes:
            said = f"{note.reviewer}: {note.text}"
            clip.markers.append(otio.schema.Marker(
                name=said, marked_range=_range(source_start + note.offset, 0, rate),
                color=otio.schema.MarkerColor.YELLOW, comment=said,
                metadata={"previz": {"review_note": note.text, "reviewer": note.reviewer,
                                     "version": note.version, "shot": shot.id}}))
        track.append(clip)
        if shot.fade_out:
            track.append(otio.schema.Transition(
                name=f"fade_to_black from {shot.media}",
                transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                in_offset=_rt(0, rate), out_offset=_rt(shot.fade_out, rate),
                metadata={"previz": {"type": "fade_to_black", "frames": shot.fade_out},
                          "fcp_xml": {"alignment": "end-black"}}))
            track.append(otio.schema.Gap(source_range=_range(0, shot.fade_out, rate)))
    if audio is not None:
        audio_name, audio_frames = audio
        sound = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
        sound.append(otio.schema.Clip(
            name=audio_name,
            # the FCP XML writer needs every file's available range
            media_reference=otio.schema.ExternalReference(
                target_url=audio_name, available_range=_range(0, audio_frames, rate)),
            source_range=_range(0, min(audio_frames, frames), rate),
            metadata={"previz": {"role": "audio bed"}}))
        timeline.tracks.append(sound)
    _shot_sound_tracks(timeline, shots, rate, source_start)
    return timeline


def _shot_sound_tracks(timeline: otio.schema.Timeline, shots: Sequence[CutShot],
                       rate: float, source_start: int) -> None:
    """Each shot's own sound as a clip at its picture's position, on as many tracks as the
    overlaps under dissolves need (a checkerboard, as editors lay them)."""
    tracks: list[tuple[otio.schema.Track, int]] = []  # track, frame where it is free
    for shot in shots:
        if not shot.sound_file:
            continue
        length = shot.record_out - shot.record_in
        index = next((i for i, (_, free) in enumerate(tracks) if free <= shot.record_in),
                     len(tracks))
        if index == len(tracks):
            tracks.append((otio.schema.Track(name=f"A{index + 2}",
                                             kind=otio.schema.TrackKind.Audio), 0))
        track, free = tracks[index]
        if shot.record_in > free:
            track.append(otio.schema.Gap(source_range=_range(0, shot.record_in - free, rate)))
        track.append(otio.schema.Clip(
            name=shot.sound_file,
            # on the picture's source timecode, so its EDL event matches the picture's
            media_reference=otio.schema.ExternalReference(
                target_url=shot.sound_file,
                available_range=_range(source_start, length, rate)),
            source_range=_range(source_start, length, rate),
            metadata={"previz": {"shot": shot.id, "role": "shot sound",
                                 "dialogue": [list(d) for d in shot.dialogue],
                                 "sound": shot.sound}}))
        tracks[index] = (track, shot.record_out)
    for track, _ in tracks:
        timeline.tracks.append(track)


def _clip_metadata(shot: CutShot) -> dict[str, Any]:
    return {
        "shot": shot.id, "take": shot.take, "take_key": shot.take_key, "status": shot.status,
        "placeholder": shot.placeholder, "prompt": shot.prompt,
        "prompt_template": shot.prompt_template, "seed": shot.seed,
        "model": shot.model, "generator": shot.generator, "notes": shot.notes,
        "error": shot.error, "record_in": shot.record_in, "record_out": shot.record_out,
        "frames": shot.frames, "transition": {"type": shot.transition,
                                              "frames": shot.transition_frames},
        "fade_out": shot.fade_out,
    }


def write_otio(timeline: otio.schema.Timeline, path: Path) -> Path:
    otio.adapters.write_to_file(timeline, str(path), adapter_name="otio_json")
    return path


def write_fcp_xml(timeline: otio.schema.Timeline, path: Path) -> Path:
    # A fade to black is an `end-black` transition item after its clip, and the black after it
    # only the next clip's later start (FCP 7 XML has no gaps). OpenTimelineIO's own FCP XML
    # reader does not see that black and places later clips early; the file is right.
    otio.adapters.write_to_file(timeline, str(path), adapter_name="fcp_xml")
    return path


def write_edl(timeline: otio.schema.Timeline, path: Path) -> Path:
    path.write_text(edl_text(timeline), encoding="utf-8")
    return path


def _tc(frame: int, fps: Fraction) -> str:
    nominal = round(fps)
    seconds, frames = divmod(int(frame), nominal)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours % 24:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


def _reel(name: str) -> str:
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", name)
    return (re.sub(r"[^A-Za-z0-9]", "", stem)[:8] or "AX").upper()


def _line(number: int, reel: str, kind: str, src_in: int, src_out: int, rec_in: int,
          rec_out: int, fps: Fraction, channel: str = "V") -> str:
    return (f"{number:03d}  {reel:<8} {channel:<5} {kind:<8} {_tc(src_in, fps)} "
            f"{_tc(src_out, fps)} {_tc(rec_in, fps)} {_tc(rec_out, fps)}")


def _comment(text: str) -> str:
    return " ".join(str(text).split())  # one line, no control characters


def edl_text(timeline: otio.schema.Timeline) -> str:
    """CMX 3600 (Avid style) of the timeline's video track; record timecode from the timeline's
    global start time."""
    fps = Fraction(timeline.global_start_time.rate).limit_denominator(1001)
    start = round(timeline.global_start_time.value)
    track = next(t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video)
    out = [f"TITLE: {_comment(timeline.name)}", "FCM: NON-DROP FRAME", ""]
    number = 0
    record = start
    previous: tuple[str, int] | None = None  # (clip name, source out) of the last clip
    pending: otio.schema.Transition | None = None
    after_gap = False
    for item in track:
        if isinstance(item, otio.schema.Transition):
            pending = item
            continue
        if isinstance(item, otio.schema.Gap):
            length = round(item.source_range.duration.value)
            if pending is not None and previous is not None and length:
                # a fade to black: the clip before dissolves into black as long as the gap
                number += 1
                out.extend([
                    _line(number, _reel(previous[0]), "C", previous[1], previous[1], record,
                          record, fps),
                    _line(number, "BL", f"D {length:03d}", 0, length, record, record + length,
                          fps),
                    f"* FROM CLIP NAME:  {previous[0]}",
                    "* TO CLIP NAME:  BLACK"])
                pending = None
            record += length
            after_gap = True
            continue
        src_in = round(item.source_range.start_time.value)
        length = round(item.source_range.duration.value)
        src_out = src_in + length
        reel = _reel(item.name)
        number += 1
        lines: list[str]
        if pending is not None:
            frames = round(pending.out_offset.value)
            fade = previous is None or after_gap
            if fade:
                lines = [_line(number, "BL", "C", 0, 0, record, record, fps)]
            else:
                lines = [_line(number, _reel(previous[0]), "C", previous[1], previous[1],
                               record, record, fps)]
            lines.append(_line(number, reel, f"D {frames:03d}", src_in, src_out, record,
                               record + length, fps))
            if not fade:
                lines.append(f"* FROM CLIP NAME:  {previous[0]}")
            lines.append(f"* TO CLIP NAME:  {item.name}")
        else:
            lines = [_line(number, reel, "C", src_in, src_out, record, record + length, fps),
                     f"* FROM CLIP NAME:  {item.name}"]
        # The clip's file, relative to the EDL: `FROM CLIP:` is what the OTIO reader links as
        # the media of the clip the event brings in, `SOURCE FILE:` what Avid writes.
        lines.append(f"* FROM CLIP: {item.media_reference.target_url}")
        lines.append(f"* SOURCE FILE: {item.media_reference.target_url}")
        for marker in item.markers:
            lines.append(f"* LOC: {_tc(round(marker.marked_range.start_time.value), fps)} "
                         f"{str(marker.color or 'RED').upper():<7} {_comment(marker.name)}")
        info = item.metadata.get("previz", {})
        if info:
            lines.append(f"* PREVIZ: {_comment(info.get('shot'))} take {info.get('take')} "
                         f"{_comment(info.get('status'))} model {_comment(info.get('model'))} "
                         f"seed {info.get('seed')}")
        out.extend(lines)
        record += length
        previous = (item.name, src_out)
        pending = None
        after_gap = False
    out.extend(_sound_events(timeline, number, start, fps))
    return "\n".join(out) + "\n"


def _sound_events(timeline: otio.schema.Timeline, number: int, start: int,
                  fps: Fraction) -> list[str]:
    """The shots' own sounds as audio events after the picture's: the first shot-sound track on
    channel A, the second (where dissolves overlap) on A2; each a cut at its picture's record
    in, with the same reel as its picture, so an editor relinks both together."""
    lines: list[str] = []
    tracks = [t for t in timeline.audio_tracks()
              if any(c.metadata.get("previz", {}).get("role") == "shot sound"
                     for c in t.find_clips())]
    for channel, track in zip(("A", "A2"), tracks, strict=False):
        for clip in track.find_clips():
            number += 1
            record = start + round(clip.range_in_parent().start_time.value)
            src_in = round(clip.source_range.start_time.value)
            length = round(clip.source_range.duration.value)
            lines += [_line(number, _reel(clip.name), "C", src_in, src_in + length, record,
                            record + length, fps, channel=channel),
                      f"* FROM CLIP NAME:  {clip.name}",
                      f"* FROM CLIP: {clip.media_reference.target_url}"]
    return lines


def timeline_clips(timeline: otio.schema.Timeline) -> list[tuple[str, int, int, int]]:
    """(name, record frame from the start, source in, frames) of every clip of the video track
    that lasts at least a frame — how two files of one cut are compared."""
    track = next(t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video)
    clips = []
    for item in track:
        if isinstance(item, otio.schema.Clip) and round(item.source_range.duration.value) > 0:
            where = item.range_in_parent()
            clips.append((item.name, round(where.start_time.value),
                          round(item.source_range.start_time.value),
                          round(item.source_range.duration.value)))
    return clips


def read_cut_file(path: Path, fps: Fraction) -> otio.schema.Timeline:
    """Read an .otio, .edl or .xml of a cut back with OpenTimelineIO."""
    suffix = Path(path).suffix.lower()
    if suffix == ".edl":
        text = Path(path).read_text(encoding="utf-8")
        head = re.search(r"^(\d{3})  BL +V +C +(\S+) \S+ (\S+) \S+\n\1 .* D \d{3} ", text,
                         re.M)
        if head and head.start() == text.find(head.group(1) + "  "):  # the first event
            black = f"000  BL       V     C        {head[2]} {head[2]} {head[3]} {head[3]}\n"
            text = text[:head.start()] + black + text[head.start():]
        return otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(fps))
    adapter = {".otio": "otio_json", ".xml": "fcp_xml"}[suffix]
    return otio.adapters.read_from_file(str(path), adapter_name=adapter)
