"""What the assembly takes in and hands back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from previz.errors import PrevizError
from previz.media.encode import H264, CodecSettings

__all__ = [
    "AssembleError",
    "TakeMedia",
    "AssembleOptions",
    "CutShot",
    "Cut",
    "REVIEW_H264",
    "SHOT_STATUSES",
]

# What the engine says about a shot, plus `missing` (no media handed over, no reason given).
SHOT_STATUSES = ("rendered", "cached", "draft", "failed", "skipped", "missing")

# The review copy is watched, not joined: a quicker preset is fine.
REVIEW_H264 = CodecSettings(
    name="h264-review", codec="libx264", container="mp4", pix_fmt="yuv420p",
    join_group="h264-review", profile="high", preset="veryfast", crf=20, gop=24,
    x264_params=H264.x264_params,
)


class AssembleError(PrevizError):
    """The cut cannot be assembled as asked; the message names the shot and file and the fix."""


@dataclass(frozen=True)
class TakeMedia:
    """The media the engine hands over for one shot.

    `path` is the selected take as a local MP4 (None when the shot has no media: it failed, or
    was skipped); `status` is the engine's word for the shot (rendered, cached, draft, failed,
    skipped); `key` names the take the file is (a draft's own key for a draft); `error` says why
    a failed shot failed (it is shown on the placeholder card).
    """

    path: Path | None
    status: str = "rendered"
    key: str | None = None
    error: str | None = None
    sound: Path | None = None  # the take's own sound (48 kHz WAV), if its model made one
    # what steered it (a layout's control video, a mask): (label, a local preview to show)
    controls: tuple[tuple[str, Path], ...] = ()

    def __post_init__(self) -> None:
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        if self.status not in SHOT_STATUSES:
            raise ValueError(f"TakeMedia.status {self.status!r} is not one of "
                             f"{', '.join(SHOT_STATUSES)}")


@dataclass(frozen=True)
class AssembleOptions:
    """How to assemble. The defaults make every file of DESIGN §5."""

    version: str = "v001"  # the version folder this cut is for (names and slate carry it)
    review: bool = True  # make the review copy with burn-ins
    slate_seconds: float = 2.0  # slate at the head of the review copy; 0 for none
    date: str | None = None  # shown on the slate; today (UTC) when None
    codec: CodecSettings = H264  # transition segments and placeholder cards: join with takes
    review_codec: CodecSettings = REVIEW_H264
    # Editorial media beside each shot's H.264 (ProRes 422 or DNxHR HQ in MOV, same name but
    # .mov), for editors who cut in Avid or Premiere and relink the cut files' clips by name.
    editorial: CodecSettings | None = None
    jobs: int | None = None  # parallel segment encodes (None: one per CPU, 2 to 4)
    verify: Literal["container", "decode"] = "container"  # how the joined cut is checked
    link_media: bool = True  # hard-link take files into the version folder when possible
    contact_columns: int = 4
    thumbnail_width: int = 320
    media_urls: Mapping[str, str] = field(default_factory=dict)  # name -> URL for review.html
    # Content credentials: the cut, review copy, editorial media and contact sheet are signed
    # with the takes they show as ingredients (previz.media.credentials.Signing); None: unsigned.
    signing: Any = None
    # Reviewers' notes by shot id (previz.dailies.follow): markers at their frames in the OTIO,
    # comments in the EDL.
    review_notes: Mapping[str, tuple[ReviewNote, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewNote:
    """A reviewer's note on a shot (dailies), placed `offset` frames into it."""

    offset: int
    text: str
    reviewer: str
    version: str  # the version it was made on
    timecode: str | None = None  # where, in that version


@dataclass(frozen=True)
class CutShot:
    """One shot as it stands in the cut."""

    id: str
    index: int
    record_in: int
    record_out: int
    frames: int
    transition: str
    transition_frames: int
    status: str
    take: int | None  # take number shown (None for a placeholder)
    take_key: str | None
    media: str  # file name of the shot's media in the version folder
    model: str
    generator: str
    seed: int | None
    steps: int | None  # of the take shown: fewer than final_steps for a fewer-steps stand-in
    final_steps: int  # of the take the plan selects
    prompt: str  # as the model read it: {NAME}s expanded
    prompt_template: str  # as the storyboard writes it
    notes: str | None
    error: str | None
    placeholder: bool
    fade_out: int = 0  # last frames fading to black
    review_notes: tuple[ReviewNote, ...] = ()  # reviewers' notes (dailies): markers in the cut
    dialogue: tuple[tuple[str, str], ...] = ()  # (character, line)
    sound: str | None = None  # effects and ambience, in words
    sound_file: str | None = None  # the shot's own sound in the version folder (WAV)
    controls: tuple[tuple[str, str], ...] = ()  # (label, preview file in the version folder)

    @property
    def draft(self) -> bool:
        return self.status == "draft"


@dataclass(frozen=True)
class Cut:
    """An assembled cut: a version folder of media and cut files, not yet published.

    `files` maps each file name to its path in `folder`, in publishing order (media first, the
    review page last); `manifest` is the provenance record the store publishes beside them.
    """

    project: str
    sequence: str
    version: str
    name: str  # SQ010_previz_v001
    folder: Path
    fps: Fraction
    width: int
    height: int
    frames: int
    timecode_start: str
    shots: tuple[CutShot, ...]
    files: dict[str, Path]
    media: Path
    review: Path | None
    otio: Path
    edl: Path
    xml: Path
    contact_sheet: Path
    review_page: Path
    manifest: dict[str, Any]
    edit_key: str
    warnings: tuple[str, ...] = ()
    # Shot media that are a take's media byte for byte (file name -> take key): published as
    # copies of the take in the store (hard links locally, server-side on S3), not uploads.
    take_media: dict[str, str] = field(default_factory=dict)

    def file(self, name: str) -> Path:
        return self.files[name]
