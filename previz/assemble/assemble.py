"""Stage 5 entry: `cut_from_takes` turns a render plan and its takes into a version folder.

    cut = cut_from_takes(plan, {"SH0010": TakeMedia(path, "rendered", key), ...}, workdir)
    version = publish_cut(cut, store)

The version folder (DESIGN §5), everything in it referenced by bare file names so it can be moved:

    SQ010_previz_v001.mp4            the cut: editorial media, no burn-ins, record TC 01:00:00:00
    SQ010_previz_v001_review.mp4     review copy: slate, burn-ins
    SQ010_previz_v001.otio/.edl/.xml cut files
    SQ010_previz_v001_contact.jpg    contact sheet: one labelled frame per shot
    SQ010_previz_v001_audio.<ext>    the audio bed, when the plan has one
    SH0010_t2.mp4 ...                each shot's media as the cut files reference it (the take,
                                     `SH0010_t1_draft.mp4` for a draft, `SH0040_placeholder.mp4`
                                     for a labelled card standing in for a failed shot)
    review.html                      review page
    manifest.json                    written by the store when the version is published, last

Shot media sit beside the cut, not in a `shots/` folder: store object names are flat.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from previz.assemble import cards, editorial
from previz.assemble.edit import (
    CopyPiece,
    FrameContent,
    Layer,
    RenderPiece,
    check_plan_timing,
    frame_content,
    frame_layers,
    plan_pieces,
    timecode_frames,
)
from previz.assemble.ffmpeg import audio_samples, iter_rgb
from previz.assemble.join import check_joined, join_pieces, render_pieces
from previz.assemble.mp4 import Mp4Error, VideoTrack, read_video_track
from previz.assemble.pieces import PieceCache
from previz.assemble.review import PAGE_NAME, ReviewTake, review_html
from previz.assemble.review_copy import ReviewReport, ReviewShot, review_copy
from previz.assemble.sound import mix_sound
from previz.assemble.types import (
    AssembleError,
    AssembleOptions,
    Cut,
    CutShot,
    TakeMedia,
)
from previz.generate.registry import generator_declaration
from previz.media.encode import H264, CodecSettings, encode_take, file_sha256
from previz.plan.types import RenderPlan, ShotPlan, TakePlan

__all__ = ["cut_from_takes", "join_cut", "JoinReport", "cut_edit_key", "cut_name",
           "FORMAT"]

FORMAT = "previz-cut/1"
SOURCE_START = 1001
_VERSION = re.compile(r"v\d{3,6}")
_PRESENT = ("rendered", "cached", "draft", "skipped")  # statuses that may come with media
_REASONS = {"failed": "FAILED", "skipped": "NOT RENDERED", "missing": "MISSING"}


def cut_name(sequence: str, version: str) -> str:
    return f"{sequence}_previz_{version}"


@dataclass
class _Shot:
    """A shot while it is assembled."""

    plan: ShotPlan
    status: str
    take: TakePlan | None  # the take the media is (None for a placeholder)
    source: Path | None  # the file handed over
    error: str | None
    media: str = ""  # file name in the version folder
    path: Path | None = None  # staged file
    track: VideoTrack | None = None
    key: str | None = None  # the take key the caller gave for the file (None: know it by hash)
    sound: Path | None = None  # the take's own sound, if it has one
    controls: tuple[tuple[str, Path], ...] = ()  # (label, source) of what steered the take
    control_files: tuple[tuple[str, Path], ...] = ()  # (label, staged preview)

    @property
    def media_id(self) -> str:
        """What the staged media is, for keeping pieces made of it: its take key, else the
        hash of its bytes."""
        return self.key or file_sha256(self.path)

    @property
    def placeholder(self) -> bool:
        return self.source is None

    @property
    def draft(self) -> bool:
        """Shows a deadline's stand-in (the draft animatic or the fewer-steps take), not the
        final take: marked wherever the shot appears, and upgraded by the next run."""
        return self.status == "draft" or (self.take is not None and self.take.key in {
            t.key for t in self.plan.stand_ins()})

    @property
    def draft_label(self) -> str | None:
        """DRAFT, DRAFT 10/40 STEPS for a fewer-steps take, or STILL for a keyframe still."""
        if not self.draft:
            return None
        if self.take is not None and self.plan.still is not None and \
                self.take.key == self.plan.still.key:
            return "STILL"
        reduced = self.plan.reduced
        if reduced is not None and self.take is not None and self.take.key == reduced.key:
            final = self.plan.selected_take.final_task.steps
            return f"DRAFT {reduced.final_task.steps}/{final} STEPS"
        return "DRAFT"


def cut_from_takes(plan: RenderPlan, takes: Mapping[str, TakeMedia | None],
                   workdir: str | os.PathLike[str], *,
                   options: AssembleOptions | None = None,
                   take_status: Mapping[str, str] | None = None,
                   pieces: PieceCache | None = None) -> Cut:
    """Assemble the cut of `plan` from each shot's selected take, into `workdir/<version>/`.

    `takes` maps shot ids to their media (None, or a TakeMedia without a path, for a shot with
    none: it gets a labelled placeholder of its exact length). `take_status` is what the render
    said of every take (take key -> done, failed, skipped …), listed on the review page.
    `pieces` keeps the pieces that make the cut (transitions, the review copy's shots,
    thumbnails) for the next one, which encodes only those whose inputs changed. Writes only
    inside `workdir`; on any error nothing is left there. Raises AssembleError naming every
    bad shot and file at once.
    """
    options = options or AssembleOptions()
    workdir = Path(workdir)
    # 1. check the plan, the options and every take before writing anything
    shots = _checked_shots(plan, takes, options)
    fps = plan.fps_fraction
    name = cut_name(plan.sequence, options.version)
    final = workdir / options.version
    if final.exists() and any(final.iterdir()):
        raise AssembleError(f"{final} already holds files — assemble into an empty folder or "
                            "another version")
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{options.version}-assembling-", dir=workdir))
    try:
        folder = scratch / "out"
        folder.mkdir()
        # 2. lay out the edit: the layers of every cut frame, and what each shows
        layers = frame_layers(plan)
        # 3. stage the shot media: takes linked in, placeholder cards encoded (and, if asked,
        #    each one again as editorial media)
        _stage_media(plan, shots, folder, options)
        content = frame_content(layers, [s.media_id for s in shots])
        editorial_media = _editorial_media(plan, shots, folder, options)
        audio, shot_sounds = _stage_audio(plan, shots, folder, name, options)
        # 4. the picture: transitions re-encoded (or kept from the last cut), the rest
        #    stream-copied; the audio under it
        media_path = folder / f"{name}.mp4"
        joined = join_cut(plan, [s.path for s in shots], media_path, scratch=scratch / "join",
                          layers=layers, tracks=[s.track for s in shots], codec=options.codec,
                          jobs=options.jobs, audio=audio, title=name, verify=options.verify,
                          content=content, cache=pieces)
        # 5. the review copy (slate, burn-ins) from per-shot pieces, and the thumbnails
        cut_shots = [_cut_shot(s, options, shot_sounds.get(s.plan.id)) for s in shots]
        # the cut files' A1: the bed (shots' own sounds get tracks of their own), else the cut's
        bed = shot_sounds.get("") if shot_sounds else audio[0] if audio else None
        slate_frames = round(Fraction(options.slate_seconds) * fps) if options.review else 0
        date = options.date or datetime.now(timezone.utc).strftime("%Y-%m-%d")
        review_path = folder / f"{name}_review.mp4" if options.review else None
        slate = cards.slate_card(plan.width, plan.height,
                                 _slate_rows(plan, shots, options.version, date, fps),
                                 name) if slate_frames else None
        thumbs, reviewed = review_copy(
            cut=media_path, out=review_path, shots=_review_shots(plan, shots),
            content=content, width=plan.width, height=plan.height, fps=fps,
            timecode_start=plan.timecode_start, source_start=SOURCE_START, slate=slate,
            slate_frames=slate_frames, codec=options.review_codec, cut_codec=options.codec,
            audio=audio, scratch=scratch / "review", jobs=options.jobs,
            thumbnail_width=options.thumbnail_width, cache=pieces)
        # 6. the contact sheet
        contact_path = folder / f"{name}_contact.jpg"
        _contact_sheet(shots, thumbs, fps, contact_path, options)
        # 7. the cut files
        timeline = editorial.build_timeline(
            name=name, shots=cut_shots, fps=fps, frames=plan.frames,
            start_frame=timecode_frames(plan.timecode_start, fps), source_start=SOURCE_START,
            audio=(bed.name, plan.frames) if bed else None,
            metadata=_timeline_metadata(plan, options, name))
        otio_path = editorial.write_otio(timeline, folder / f"{name}.otio")
        edl_path = editorial.write_edl(timeline, folder / f"{name}.edl")
        xml_path = editorial.write_fcp_xml(timeline, folder / f"{name}.xml")
        # 8. the review page
        page_path = folder / PAGE_NAME
        review_takes = _review_takes(shots, take_status or {})
        page_path.write_text(_page(plan, cut_shots, review_takes, thumbs, options, name, date,
                                   slate_frames, joined.warnings), encoding="utf-8")
        # 9. content credentials, made and signed last (a stream-copy join keeps none)
        edit_key = cut_edit_key(plan, takes, options)
        unsigned = _sign_cut(shots, [media_path, review_path, contact_path, *editorial_media],
                             options, name, edit_key)
        # 10. move the finished folder into place
        files = _publishing_order(folder, shots, audio, *shot_sounds.values(),
                                  *editorial_media, media_path,
                                  review_path, contact_path, otio_path, edl_path, xml_path,
                                  page_path)
        final.mkdir(parents=True, exist_ok=True)
        final.rmdir()
        os.replace(folder, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    files = {n: final / p.name for n, p in files.items()}
    warnings = tuple(joined.warnings) + tuple(_unsigned_warning(unsigned))
    manifest = _manifest(plan, cut_shots, files, joined, reviewed, options, name, date,
                         slate_frames, edit_key, warnings, unsigned, review_takes)
    return Cut(
        project=plan.project, sequence=plan.sequence, version=options.version, name=name,
        folder=final, fps=fps, width=plan.width, height=plan.height, frames=plan.frames,
        timecode_start=plan.timecode_start, shots=tuple(cut_shots), files=files,
        media=final / media_path.name, review=final / review_path.name if review_path else None,
        otio=final / otio_path.name, edl=final / edl_path.name, xml=final / xml_path.name,
        contact_sheet=final / contact_path.name, review_page=final / PAGE_NAME,
        manifest=manifest, edit_key=edit_key, warnings=warnings,
        take_media={shot.media: shot.take.key for shot in shots
                    if shot.take is not None and not shot.placeholder},
    )


# -- 1. checking -------------------------------------------------------------------------------


def _checked_shots(plan: RenderPlan, takes: Mapping[str, TakeMedia | None],
                   options: AssembleOptions) -> list[_Shot]:
    problems: list[str] = []
    if not _VERSION.fullmatch(options.version):
        problems.append(f"version {options.version!r} is not a version name — use 'v001'")
    if options.slate_seconds < 0:
        problems.append(f"slate_seconds is {options.slate_seconds} — use 0 for no slate")
    unknown = sorted(set(takes) - {s.id for s in plan.shots})
    if unknown:
        problems.append(f"takes given for shots the plan does not have: {', '.join(unknown)}")
    if plan.audio is not None and not Path(plan.audio).is_file():
        problems.append(f"the audio bed {plan.audio} does not exist — fix `audio:` in the "
                        "storyboard or restore the file")
    try:
        check_plan_timing(plan)
    except AssembleError as error:
        problems.append(str(error))
    fps = plan.fps_fraction
    shots: list[_Shot] = []
    for shot in plan.shots:
        given = takes.get(shot.id)
        status = given.status if given is not None else "missing"
        error = given.error if given is not None else None
        if given is None or given.path is None:
            if status in ("rendered", "cached", "draft"):
                problems.append(f"{shot.id}: status {status!r} but no take file was given — "
                                "pass the take's path")
            shots.append(_Shot(shot, status, None, None, error))
            continue
        if status in ("failed", "missing"):
            problems.append(f"{shot.id}: status {status!r} but a take file was given "
                            f"({given.path}) — pass None, or the status the take has")
            continue
        take = _take_of(shot, given, problems)
        where = f"{shot.id}: take file {given.path}"
        if not given.path.is_file():
            problems.append(f"{where} does not exist — render the shot again "
                            f"(previz render --only {shot.id})")
            continue
        try:
            track = read_video_track(given.path)
        except Mp4Error as error:
            problems.append(f"{where}: {error}")
            continue
        wrong = []
        if (track.width, track.height) != (plan.width, plan.height):
            wrong.append(f"is {track.width}x{track.height}, the cut is {plan.width}x{plan.height}")
        if track.frames != shot.frames:
            wrong.append(f"has {track.frames} frames, the plan needs {shot.frames}")
        if track.fps is None:
            wrong.append("has a variable frame rate, the cut needs constant "
                         f"{_fps_text(fps)} fps")
        elif track.fps != fps:
            wrong.append(f"runs at {_fps_text(track.fps)} fps, the cut at {_fps_text(fps)}")
        if wrong:
            problems.append(f"{where} {' and '.join(wrong)} — render the take again "
                            f"(previz render --only {shot.id} --force)")
            continue
        shots.append(_Shot(shot, status, take, given.path, error, track=track, key=given.key,
                           sound=given.sound, controls=given.controls))
    if problems:
        raise AssembleError(f"cannot assemble {plan.project}/{plan.sequence}:\n  "
                            + "\n  ".join(problems))
    return shots


def _take_of(shot: ShotPlan, given: TakeMedia, problems: list[str]) -> TakePlan:
    candidates = list(shot.takes) + shot.stand_ins()
    if given.key is None:
        if given.status == "draft" and shot.fallback is not None:
            return shot.fallback
        return shot.selected_take
    for take in candidates:
        if take.key == given.key:
            return take
    problems.append(f"{shot.id}: take key {given.key} is not one of the plan's takes for the "
                    "shot — hand over the take the plan selects (or its draft)")
    return shot.selected_take


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps} ({float(fps):.3f})"


# -- 3. staging --------------------------------------------------------------------------------


def _stage_media(plan: RenderPlan, shots: list[_Shot], folder: Path,
                 options: AssembleOptions) -> None:
    for shot in shots:
        if shot.placeholder:
            shot.media = f"{shot.plan.id}_placeholder.mp4"
            shot.path = folder / shot.media
            label = _REASONS.get(shot.status, shot.status.upper())
            reason = f"{label}: {shot.error}" if shot.error else label
            card = cards.placeholder_card(plan.width, plan.height, shot.plan.id, reason,
                                          shot.plan.prompt)
            encode_take(_repeat(card, shot.plan.frames), plan.fps_fraction, shot.path,
                        width=plan.width, height=plan.height, start_frame=SOURCE_START,
                        codec_settings=options.codec)
            shot.track = read_video_track(shot.path)
            continue
        suffix = "_draft" if shot.draft else ""
        shot.media = f"{shot.plan.id}_t{shot.take.take}{suffix}.mp4"
        shot.path = folder / shot.media
        _link_or_copy(shot.source, shot.path, options.link_media)
        staged = []
        for number, (label, source) in enumerate(shot.controls, 1):
            target = folder / f"{shot.plan.id}_control{number}.mp4"
            _link_or_copy(source, target, options.link_media)
            staged.append((label, target))
        shot.control_files = tuple(staged)


def _editorial_media(plan: RenderPlan, shots: list[_Shot], folder: Path,
                     options: AssembleOptions) -> list[Path]:
    """Each shot's media again in the editorial codec, named like it but .mov, with the same
    source timecode, so an editor relinks the cut files' clips to them by name."""
    settings = options.editorial
    if settings is None:
        return []
    made = []
    for shot in shots:
        path = folder / f"{Path(shot.media).stem}.mov"
        encode_take(iter_rgb(shot.path, plan.width, plan.height), plan.fps_fraction, path,
                    width=plan.width, height=plan.height, start_frame=SOURCE_START,
                    codec_settings=settings)
        made.append(path)
    return made


def _repeat(frame: np.ndarray, count: int):
    for _ in range(count):
        yield frame


def _link_or_copy(source: Path, target: Path, link: bool) -> None:
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


def _stage_audio(plan: RenderPlan, shots: list[_Shot], folder: Path, name: str,
                 options: AssembleOptions) -> tuple[tuple[Path, int, int] | None, dict[str, Path]]:
    """(the cut's sound: staged file, lead samples, total samples at 48 kHz; or None) and each
    shot's own sound file. With shots' sound files, the mix (previz.assemble.sound); else the
    bed as it is."""
    mixed = mix_sound(plan, folder, name, {s.plan.id: s.media for s in shots},
                      {s.plan.id: s.sound for s in shots if s.sound is not None})
    if mixed is not None:
        sounds = dict(mixed.shots)
        if plan.audio is not None:
            # the bed as it is, under "": the cut files' A1 (the mix is the picture's sound)
            sounds[""] = _staged_bed(plan, folder, f"{name}_bed", options)
        return (mixed.path, 0, mixed.samples), sounds
    if plan.audio is None:
        return None, {}
    bed = _staged_bed(plan, folder, f"{name}_audio", options)
    return (bed, 0, audio_samples(plan.frames, plan.fps_fraction)), {}


def _staged_bed(plan: RenderPlan, folder: Path, stem: str, options: AssembleOptions) -> Path:
    source = Path(plan.audio)
    suffix = source.suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,5}", source.suffix.lower()) \
        else ".audio"
    target = folder / f"{stem}{suffix}"
    _link_or_copy(source, target, options.link_media)
    return target



# -- 4. the picture ----------------------------------------------------------------------------


@dataclass
class JoinReport:
    """How the cut's picture was built."""

    frames: int
    copied_frames: int
    encoded_frames: int
    pieces: int
    encoded_pieces: int
    reused_pieces: int = 0  # transition pieces kept from an earlier cut
    warnings: list[str] = field(default_factory=list)
    track: VideoTrack | None = None


def join_cut(plan: RenderPlan, media: Sequence[Path], out: Path, *, scratch: Path,
             layers: Sequence[tuple[Layer, ...]] | None = None,
             tracks: Sequence[VideoTrack] | None = None, codec: CodecSettings = H264,
             jobs: int | None = None, audio: tuple[Path, int, int] | None = None,
             title: str | None = None, verify: str = "container",
             content: Sequence[FrameContent] | None = None,
             cache: PieceCache | None = None) -> JoinReport:
    """Build the cut's picture from one media file per shot (already checked against the plan).

    1. lay out the edit and find where each file may be entered by stream copy;
    2. encode the transition pieces with the takes' stream parameters;
    3. learn the encoder's codec configuration; a file that differs is encoded again whole;
    4. join everything in one stream-copy pass (the audio bed laid under it) and check it.

    With `content` (what each frame shows) and a `cache`, transition pieces kept from an earlier
    cut are reused and new ones kept.
    """
    fps = plan.fps_fraction
    layers = list(layers) if layers is not None else frame_layers(plan)
    tracks = list(tracks) if tracks is not None else [read_video_track(p) for p in media]
    copyable = [_can_copy(t) for t in tracks]
    warnings: list[str] = []
    scratch.mkdir(parents=True, exist_ok=True)
    reference: VideoTrack | None = None
    for attempt in range(2):
        pieces = plan_pieces(layers, [t.keyframes for t in tracks], copyable)
        rendered, reused = render_pieces(pieces, media, fps, plan.width, plan.height,
                                         scratch / f"pieces{attempt}", codec, jobs,
                                         content=content, cache=cache)
        if rendered:
            reference = read_video_track(next(iter(rendered.values())))
        else:
            signatures = Counter(_signature(t) for t, ok in zip(tracks, copyable, strict=True)
                                 if ok)
            if len(signatures) == 1:
                reference = next(t for t, ok in zip(tracks, copyable, strict=True) if ok)
            else:
                reference = _probe_encoder(plan, scratch / "probe.mp4", codec)
        odd = [i for i, t in enumerate(tracks)
               if copyable[i] and _signature(t) != _signature(reference)]
        if not odd:
            break
        for index in odd:
            copyable[index] = False
            warnings.append(f"{plan.shots[index].id}: {media[index].name} was encoded with "
                            "other stream parameters than the cut's; its frames were encoded "
                            "again")
    else:  # pragma: no cover - the second layout copies only matching files
        raise AssembleError("internal: could not settle the cut's stream parameters")
    starts = [p.record_in for p in pieces]
    join_pieces(pieces, media, [t.frames for t in tracks], rendered, out, fps=fps,
                reference=reference, timecode=plan.timecode_start, title=title or out.stem,
                audio=audio, list_path=scratch / "concat.txt")
    track = check_joined(out, frames=plan.frames, reference=reference, keyframes=starts,
                         timecode_frame=timecode_frames(plan.timecode_start, fps))
    if verify == "decode":
        decoded = sum(1 for _ in iter_rgb(out, plan.width, plan.height))
        if decoded != plan.frames:
            raise AssembleError(f"the joined cut {out.name} decodes to {decoded} frames, the "
                                f"plan has {plan.frames} — this is a bug in previz")
    copied = sum(p.frames for p in pieces if isinstance(p, CopyPiece))
    encoded = sum(p.frames for p in pieces if isinstance(p, RenderPiece))
    return JoinReport(frames=plan.frames, copied_frames=copied, encoded_frames=encoded,
                      pieces=len(pieces), encoded_pieces=len(rendered) - len(reused),
                      reused_pieces=len(reused), warnings=warnings, track=track)


def _can_copy(track: VideoTrack) -> bool:
    return (track.codec in ("avc1", "avc3") and track.edit_offset == 0 and bool(track.keyframes)
            and track.keyframes[0] == 0 and bool(track.config))


def _signature(track: VideoTrack) -> tuple:
    return track.codec, track.config, track.timescale, track.deltas[0] if track.deltas else 0


def _probe_encoder(plan: RenderPlan, path: Path, codec: CodecSettings) -> VideoTrack:
    """Encode one black frame to learn this encoder's codec configuration for the cut."""
    black = np.zeros((plan.height, plan.width, 3), np.uint8)
    encode_take([black], plan.fps_fraction, path, width=plan.width, height=plan.height,
                codec_settings=codec)
    return read_video_track(path)


# -- 5. review copy ----------------------------------------------------------------------------


def _review_shots(plan: RenderPlan, shots: list[_Shot]) -> list[ReviewShot]:
    """Each shot owns the cut frames from its record in to the next shot's: a dissolve carries
    the incoming shot's burn-ins."""
    ends = [s.record_in for s in plan.shots[1:]] + [plan.frames]
    return [ReviewShot(label=_label(shot), owns=(shot.plan.record_in, end),
                       record_in=shot.plan.record_in,
                       thumbnail_frame=shot.plan.record_in + shot.plan.frames // 2)
            for shot, end in zip(shots, ends, strict=True)]


def _label(shot: _Shot) -> cards.ShotLabel:
    task = _task(shot)
    if shot.placeholder:
        return cards.ShotLabel(f"{shot.plan.id}", f"{shot.plan.model}  no take",
                               f"PLACEHOLDER — {shot.status.upper()}", failed=True)
    return cards.ShotLabel(f"{shot.plan.id}  t{shot.take.take}",
                           f"{task.model}  seed {task.seed}", shot.draft_label)


def _task(shot: _Shot):
    take = shot.take or shot.plan.selected_take
    return take.final_task


def _timecode(frame: int, fps: Fraction) -> str:
    from previz.storyboard.timing import timecode

    return timecode(frame, fps)


def _slate_rows(plan: RenderPlan, shots: list[_Shot], version: str, date: str,
                fps: Fraction) -> list[tuple[str, str]]:
    counts = Counter(s.status for s in shots)
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return [
        ("Project", plan.project), ("Sequence", plan.sequence), ("Version", version),
        ("Date", date), ("Shots", f"{len(shots)} ({status})"),
        ("Length", f"{_timecode(plan.frames, fps)} · {plan.frames} frames"),
        ("Format", f"{plan.width}×{plan.height} · {plan.fps} fps"),
        ("Starts", plan.timecode_start),
    ]


# -- 6. contact sheet --------------------------------------------------------------------------


def _contact_sheet(shots: list[_Shot], thumbs: list[np.ndarray], fps: Fraction, path: Path,
                   options: AssembleOptions) -> None:
    labels = []
    for shot in shots:
        take = f"t{shot.take.take}" if shot.take is not None else "placeholder"
        flag = f" {shot.draft_label}" if shot.draft else ""
        flag = f" {shot.status.upper()}" if shot.placeholder else flag
        labels.append((f"{shot.plan.id}  {take}{flag}",
                       f"{shot.plan.frames}f · {float(shot.plan.frames / fps):.2f}s · "
                       f"{shot.plan.model}", shot.placeholder or shot.draft))
    sheet = cards.contact_sheet(thumbs, labels, options.contact_columns,
                                options.thumbnail_width)
    path.write_bytes(cards.jpeg_bytes(sheet, quality=88))


# -- 8. review page ----------------------------------------------------------------------------


def _cut_shot(shot: _Shot, options: AssembleOptions, sound: Path | None) -> CutShot:
    task = _task(shot)
    plan = shot.plan
    return CutShot(
        id=plan.id, index=plan.index, record_in=plan.record_in, record_out=plan.record_out,
        frames=plan.frames, transition=plan.transition.type,
        transition_frames=plan.transition.frames, status=shot.status,
        take=shot.take.take if shot.take else None,
        take_key=shot.take.key if shot.take else None, media=shot.media,
        model=task.model if shot.take else plan.model,
        generator=task.generator if shot.take else plan.generator,
        seed=task.seed if shot.take else None, steps=task.steps if shot.take else None,
        final_steps=plan.selected_take.final_task.steps, prompt=task.prompt,
        prompt_template=task.shot_prompt or plan.prompt,
        notes=plan.notes, error=shot.error if shot.placeholder else None,
        placeholder=shot.placeholder, fade_out=plan.fade_out,
        review_notes=tuple(n for n in options.review_notes.get(plan.id, ())
                           if n.offset < plan.frames),
        dialogue=plan.dialogue, sound=plan.sound, sound_file=sound.name if sound else None,
        controls=tuple((label, path.name) for label, path in shot.control_files),
    )


def _review_takes(shots: list[_Shot], take_status: Mapping[str, str]) -> list[list[ReviewTake]]:
    """Every take of every shot (and the stand-in shown, under a deadline): on the review page,
    and in the manifest for dailies, where reviewers compare and pick them."""
    takes = []
    for shot in shots:
        shown = shot.take.key if shot.take else None
        entries = [ReviewTake(t.take, t.seed, t.key, t.take == shot.plan.select, t.key == shown,
                              take_status.get(t.key, "unknown"))
                   for t in shot.plan.takes]
        for stand_in in shot.plan.stand_ins():
            if stand_in.key == shown:
                entries.append(ReviewTake(stand_in.take, stand_in.seed, stand_in.key, False, True,
                                          take_status.get(stand_in.key, "draft"),
                                          draft=shot.draft_label))
        takes.append(entries)
    return takes


def _page(plan: RenderPlan, cut_shots: list[CutShot], takes: list[list[ReviewTake]],
          thumbs: list[np.ndarray], options: AssembleOptions,
          name: str, date: str,
          slate_frames: int, warnings: Sequence[str]) -> str:
    fps = plan.fps_fraction
    start = timecode_frames(plan.timecode_start, fps)
    player = f"{name}_review.mp4" if options.review else f"{name}.mp4"
    downloads = [("cut (mp4)", f"{name}.mp4")]
    if options.review:
        downloads.append(("review copy", f"{name}_review.mp4"))
    downloads += [("OTIO", f"{name}.otio"), ("EDL", f"{name}.edl"), ("FCP XML", f"{name}.xml"),
                  ("contact sheet", f"{name}_contact.jpg")]
    return review_html(
        title=name, project=plan.project, sequence=plan.sequence, version=options.version,
        fps=fps, width=plan.width, height=plan.height, frames=plan.frames,
        timecode_start=plan.timecode_start, duration_tc=_timecode(plan.frames, fps), date=date,
        shots=cut_shots,
        thumbnails=[cards.jpeg_bytes(t, width=options.thumbnail_width) for t in thumbs],
        takes=takes, player=player, slate_frames=slate_frames if options.review else 0,
        record_timecodes=[(_timecode(start + s.record_in, fps), _timecode(start + s.record_out,
                                                                            fps))
                          for s in cut_shots],
        downloads=downloads, urls=options.media_urls, warnings=warnings)


# -- 9. files and manifest ---------------------------------------------------------------------


def _publishing_order(folder: Path, shots: list[_Shot], audio, *paths: Path | None
                      ) -> dict[str, Path]:
    """Media first (shot media, audio bed, cut, review copy, contact sheet), then the cut
    files, the review page last."""
    files: dict[str, Path] = {}
    for shot in shots:
        files[shot.media] = shot.path
        files.update({path.name: path for _, path in shot.control_files})
    if audio:
        files[audio[0].name] = audio[0]
    for path in paths:
        if path is not None:
            files[path.name] = path
    return files


def _timeline_metadata(plan: RenderPlan, options: AssembleOptions, name: str) -> dict[str, Any]:
    return {"format": FORMAT, "project": plan.project, "sequence": plan.sequence,
            "version": options.version, "cut": name, "fps": plan.fps, "fps_exact": plan.fps_exact,
            "width": plan.width, "height": plan.height, "frames": plan.frames,
            "timecode_start": plan.timecode_start, "plan_edit_key": plan.edit_key,
            "storyboard": Path(plan.storyboard).name}


def _manifest(plan: RenderPlan, cut_shots: list[CutShot], files: dict[str, Path],
              joined: JoinReport, reviewed: ReviewReport | None, options: AssembleOptions,
              name: str, date: str,
              slate_frames: int, edit_key: str, warnings: Sequence[str],
              unsigned: Sequence[str], takes: list[list[ReviewTake]]) -> dict[str, Any]:
    roles = {"cut": f"{name}.mp4", "otio": f"{name}.otio", "edl": f"{name}.edl",
             "xml": f"{name}.xml", "contact_sheet": f"{name}_contact.jpg",
             "review_page": PAGE_NAME}
    if options.review:
        roles["review"] = f"{name}_review.mp4"
    audio = next((n for n in files if n.startswith(f"{name}_audio")), None)
    if audio:
        roles["audio"] = audio
    import opentimelineio

    return {
        "format": FORMAT,
        "kind": "cut",
        "cut": {"name": name, "version": options.version, "project": plan.project,
                "sequence": plan.sequence, "fps": plan.fps, "fps_exact": plan.fps_exact,
                "width": plan.width, "height": plan.height, "frames": plan.frames,
                "timecode_start": plan.timecode_start, "date": date,
                "slate_frames": slate_frames, "cut_key": edit_key},
        "plan": {"edit_key": plan.edit_key, "storyboard": Path(plan.storyboard).name},
        "roles": roles,
        "shots": [asdict(s) for s in cut_shots],
        # every take of each shot, not only the one shown (dailies compares and picks them)
        "takes": {shot.id: [asdict(t) for t in entries]
                  for shot, entries in zip(cut_shots, takes, strict=True)},
        "join": {"copied_frames": joined.copied_frames, "encoded_frames": joined.encoded_frames,
                 "pieces": joined.pieces, "encoded_pieces": joined.encoded_pieces,
                 "codec": options.codec.name, "reused_pieces": joined.reused_pieces},
        "review": asdict(reviewed) if reviewed is not None else None,
        "provenance": {"digital_source_type": "compositeWithTrainedAlgorithmicMedia",
                       "tools": {"previz": _previz_version(),
                                 "opentimelineio": opentimelineio.__version__},
                       "signed_by": options.signing.subject if options.signing else None,
                       "unsigned_takes": list(unsigned)},
        "warnings": list(warnings),
    }


def _sign_cut(shots: list[_Shot], media: Sequence[Path | None], options: AssembleOptions,
              name: str, edit_key: str) -> list[str]:
    """Sign what assembly made (the cut, review copy, contact sheet, editorial media) with the
    takes it shows as ingredients, whose own credentials travel inside it. Returns the shots
    whose takes carry none (rendered before signing was set up, or by workers without it)."""
    signing = options.signing
    if signing is None:
        return []
    from previz.media.credentials import (
        COMPOSITE,
        COMPOSITE_TRAINED,
        TRAINED,
        Ingredient,
        is_signed,
        sign_derived,
    )

    takes = [(shot, Ingredient(shot.path, f"{shot.plan.id} take {shot.take.take} "
                                          f"({shot.take.key[:12]})", "componentOf"))
             for shot in shots if shot.take is not None and not shot.placeholder]
    unsigned = [shot.plan.id for shot, ingredient in takes if not is_signed(ingredient.path)]
    trained = any(generator_declaration(shot.take.final_task.generator).digital_source_type
                  == TRAINED for shot, _ in takes)
    about = {"cut": name, "version": options.version, "cut_key": edit_key}
    by_media = {Path(shot.media).stem: ingredient for shot, ingredient in takes}
    for path in media:
        if path is None:
            continue
        if path.suffix == ".mov":  # editorial media: one shot's (no take for a placeholder)
            ingredients = [by_media[path.stem]] if path.stem in by_media else []
        else:
            ingredients = [ingredient for _, ingredient in takes]
        sign_derived(path, signing, title=path.name,
                     source_type=COMPOSITE_TRAINED if trained else COMPOSITE,
                     ingredients=ingredients, about=about)
    return unsigned


def _unsigned_warning(unsigned: list[str]) -> list[str]:
    if not unsigned:
        return []
    return [f"the takes of {', '.join(unsigned)} carry no content credentials (rendered "
            "before signing was set up, or by workers without PREVIZ_C2PA_CERT and "
            "PREVIZ_C2PA_KEY): the cut lists them as unsigned ingredients — render them again "
            "with --force --only to sign them"]


def _previz_version() -> str:
    try:
        from importlib.metadata import version

        return version("previz")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def cut_edit_key(plan: RenderPlan, takes: Mapping[str, TakeMedia | None],
                 options: AssembleOptions | None = None) -> str:
    """The fingerprint of the cut as it will look: the plan's edit, what each shot shows (take
    key, or the file's hash when no key is given; placeholder and its reason), the audio bed
    and the options that change pixels. The store reuses a version with the same key."""
    options = options or AssembleOptions()
    shots = []
    for shot in plan.shots:
        given = takes.get(shot.id)
        if given is None or given.path is None:
            status = given.status if given is not None else "missing"
            shots.append([shot.id, "placeholder", status, given.error if given else None])
            continue
        ident = given.key or file_sha256(given.path)
        shots.append([shot.id, given.status == "draft", ident])
    audio = file_sha256(Path(plan.audio)) if plan.audio and Path(plan.audio).is_file() else None
    fields = {"format": FORMAT, "plan": plan.edit_key, "shots": shots, "audio": audio,
              "review": options.review, "slate": options.slate_seconds,
              "codec": options.codec.name, "review_codec": options.review_codec.name}
    if options.editorial is not None:  # only then: earlier cuts keep their keys
        fields["editorial"] = options.editorial.name
    if options.signing is not None:  # a cut signed once signing is set up is another file
        fields["signed_by"] = options.signing.subject
    if options.review_notes:  # its cut files carry them
        fields["review_notes"] = {shot: [asdict(n) for n in notes]
                                  for shot, notes in sorted(options.review_notes.items())}
    body = json.dumps(fields, sort_keys=True)
    return "cut-" + hashlib.sha256(body.encode()).hexdigest()

