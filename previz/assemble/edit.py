"""The edit as frames: which frame of which shot's media each cut frame shows, and how the cut
is built from them — stream-copied runs and the few frames that must be encoded again.

Everything here is pure arithmetic on the plan; the ffmpeg work is in `join.py`.

Conventions (DESIGN §5):

- Shot media hold exactly `shot.frames` frames; source frame numbers start at 1001.
- A dissolve of d frames into shot B covers cut frames [B.record_in, B.record_in + d): the last
  d frames of the outgoing shot A under the first d frames of B. A fade from black of d frames
  covers B's first d frames over black. In either, frame k (0-based) of the transition shows B
  at opacity (k + 1/2) / d: never a pure frame, symmetric about the middle. A fade out of d
  frames is the mirror: frame k of A's last d frames shows A at (d - k - 1/2) / d over black.
- A cut frame that shows one frame of one shot at full opacity is *pure*; a run of pure frames
  of one shot can be stream-copied from its first keyframe on. Everything else — transitions,
  and the frames between a transition and the next keyframe — is encoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from previz.assemble.types import AssembleError
from previz.plan.types import RenderPlan, ShotPlan

__all__ = [
    "Layer",
    "CopyPiece",
    "RenderPiece",
    "Piece",
    "check_plan_timing",
    "transition_alpha",
    "frame_layers",
    "FrameContent",
    "frame_content",
    "plan_pieces",
    "timecode_frames",
]


@dataclass(frozen=True)
class Layer:
    """Frame `frame` (0-based) of shot number `shot`, laid over what is below at `alpha`."""

    shot: int
    frame: int
    alpha: Fraction

    @property
    def opaque(self) -> bool:
        return self.alpha == 1


@dataclass(frozen=True)
class CopyPiece:
    """Frames [start, stop) of shot `shot`'s media, joined by stream copy. `start` is a
    keyframe."""

    shot: int
    start: int
    stop: int
    record_in: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class RenderPiece:
    """Cut frames [record_in, record_in + len(layers)) composed from their layers and encoded
    again with the takes' stream parameters."""

    record_in: int
    layers: tuple[tuple[Layer, ...], ...]

    @property
    def frames(self) -> int:
        return len(self.layers)

    def source_ranges(self) -> dict[int, tuple[int, int]]:
        """For each shot the piece needs, the frames [lo, hi) of its media to decode."""
        ranges: dict[int, tuple[int, int]] = {}
        for stack in self.layers:
            for layer in stack:
                lo, hi = ranges.get(layer.shot, (layer.frame, layer.frame + 1))
                ranges[layer.shot] = (min(lo, layer.frame), max(hi, layer.frame + 1))
        return ranges


Piece = CopyPiece | RenderPiece


def check_plan_timing(plan: RenderPlan) -> None:
    """The plan's record frames must tile the cut exactly as the transitions say."""
    problems: list[str] = []
    expected_in = 0
    for index, shot in enumerate(plan.shots):
        overlap = shot.transition.frames if shot.transition.type == "dissolve" else 0
        if shot.transition.type != "cut" and shot.transition.frames <= 0:
            problems.append(f"{shot.id}: a {shot.transition.type} needs a length in frames, "
                            f"got {shot.transition.frames}")
        if shot.transition.type == "dissolve" and index == 0:
            problems.append(f"{shot.id}: the first shot cannot dissolve from nothing")
        if shot.transition.frames > shot.frames:
            problems.append(f"{shot.id}: its {shot.transition.frames}-frame "
                            f"{shot.transition.type} is longer than the shot ({shot.frames})")
        if shot.fade_out and shot.transition.frames + shot.fade_out > shot.frames:
            problems.append(f"{shot.id}: its {shot.transition.type} in and "
                            f"{shot.fade_out}-frame fade out overlap ({shot.frames} frames)")
        if shot.fade_out and index + 1 < len(plan.shots) \
                and plan.shots[index + 1].transition.type == "dissolve":
            problems.append(f"{plan.shots[index + 1].id}: dissolves from {shot.id}, which "
                            "fades to black")
        if index and overlap > plan.shots[index - 1].frames:
            problems.append(f"{shot.id}: its {overlap}-frame dissolve is longer than "
                            f"{plan.shots[index - 1].id}")
        if shot.frames <= 0:
            problems.append(f"{shot.id}: {shot.frames} frames — a shot needs at least one")
        if shot.record_out - shot.record_in != shot.frames:
            problems.append(f"{shot.id}: record {shot.record_in}..{shot.record_out} is not its "
                            f"{shot.frames} frames")
        if shot.record_in != expected_in - overlap:
            problems.append(f"{shot.id}: record in is {shot.record_in}, the edit puts it at "
                            f"{expected_in - overlap}")
        expected_in = shot.record_out
    if plan.shots and expected_in != plan.frames:
        problems.append(f"the shots end at frame {expected_in} but the plan is {plan.frames} "
                        "frames long")
    if not plan.shots:
        problems.append("the plan has no shots")
    if problems:
        raise AssembleError("the plan's timing does not add up — compile it again "
                            "(previz plan): " + "; ".join(problems))


def transition_alpha(shot: ShotPlan, frame: int) -> Fraction:
    """Opacity of the shot's `frame` over what is below it: 1 outside its transition in and its
    fade out. A fade out of d frames mirrors a fade in: its frame k shows the shot at
    (d - k - 1/2) / d over black."""
    alpha = Fraction(1)
    length = shot.transition.frames
    if shot.transition.type != "cut" and frame < length:
        alpha = Fraction(2 * frame + 1, 2 * length)
    fading = frame - (shot.frames - shot.fade_out)
    if shot.fade_out and fading >= 0:
        alpha *= Fraction(2 * (shot.fade_out - fading) - 1, 2 * shot.fade_out)
    return alpha


def frame_layers(plan: RenderPlan) -> list[tuple[Layer, ...]]:
    """For every cut frame, the layers that make it, bottom first (black is below them all).

    Layers under an opaque one are dropped, so a pure frame has exactly one opaque layer.
    """
    check_plan_timing(plan)
    stacks: list[list[Layer]] = [[] for _ in range(plan.frames)]
    for index, shot in enumerate(plan.shots):
        for frame in range(shot.frames):
            layer = Layer(index, frame, transition_alpha(shot, frame))
            stack = stacks[shot.record_in + frame]
            if layer.opaque:
                stack.clear()
            stack.append(layer)
    return [tuple(stack) for stack in stacks]


# What one cut frame shows: (media identity, source frame, opacity) per layer, bottom first.
FrameContent = tuple[tuple[str, int, str], ...]


def frame_content(layers: Sequence[tuple[Layer, ...]],
                  media_ids: Sequence[str]) -> list[FrameContent]:
    """What each cut frame shows, naming media by identity (take key, file hash) rather than by
    position in the edit: equal content is equal pixels wherever the frame stands, which is
    what lets pieces of one cut be reused in the next."""
    return [tuple((media_ids[layer.shot], layer.frame, str(layer.alpha)) for layer in stack)
            for stack in layers]


def plan_pieces(layers: Sequence[tuple[Layer, ...]], keyframes: Sequence[Sequence[int]],
                copyable: Sequence[bool]) -> list[Piece]:
    """Split the cut into stream-copied runs and re-encoded pieces.

    A run of pure frames of one shot is copied from the first keyframe of the shot's media at or
    after its start; the frames before that keyframe are encoded again, together with any
    transition frames next to them, as one piece. A shot whose media cannot be copied (its stream
    parameters differ from the cut's) is encoded again whole.
    """
    pieces: list[Piece] = []
    pending: list[tuple[Layer, ...]] = []
    pending_in = 0

    def flush_render() -> None:
        nonlocal pending
        if pending:
            pieces.append(RenderPiece(pending_in, tuple(pending)))
            pending = []

    def add_render(record: int, stack: tuple[Layer, ...]) -> None:
        nonlocal pending_in
        if not pending:
            pending_in = record
        pending.append(stack)

    record = 0
    total = len(layers)
    while record < total:
        stack = layers[record]
        if len(stack) != 1 or not stack[0].opaque:
            add_render(record, stack)
            record += 1
            continue
        # a run of pure frames of one shot, consecutive in its media
        shot, first = stack[0].shot, stack[0].frame
        end = record + 1
        while (end < total and len(layers[end]) == 1 and layers[end][0].opaque
               and layers[end][0].shot == shot
               and layers[end][0].frame == first + (end - record)):
            end += 1
        last = first + (end - record)  # one past the run's last media frame
        key = _keyframe_at_or_after(keyframes[shot], first) if copyable[shot] else last
        for offset in range(min(key, last) - first):
            add_render(record + offset, layers[record + offset])
        if key < last:
            flush_render()
            pieces.append(CopyPiece(shot, key, last, record + (key - first)))
        record = end
    flush_render()
    return pieces


def _keyframe_at_or_after(keyframes: Sequence[int], frame: int) -> int:
    for key in keyframes:
        if key >= frame:
            return key
    return 1 << 62


def timecode_frames(timecode: str, fps: Fraction) -> int:
    """Frames of a non-drop timecode HH:MM:SS:FF counted at the nominal rate."""
    try:
        hours, minutes, seconds, frames = (int(part) for part in timecode.split(":"))
    except ValueError:
        raise AssembleError(f"timecode {timecode!r} is not HH:MM:SS:FF") from None
    nominal = round(fps)
    if frames >= nominal:
        raise AssembleError(f"timecode {timecode!r} has frame {frames}, more than {nominal} fps")
    return ((hours * 60 + minutes) * 60 + seconds) * nominal + frames
