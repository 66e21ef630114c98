"""The render plan: what to generate, in what order, and how it lands in the cut.

Types flow forward: a `RenderPlan` holds one `ShotPlan` per shot in cut order; each shot has
`TakePlan`s (one per seed); each take is one or more `ShotTask`s (segments), the unit of GPU work.
Everything here is plain data (pydantic, JSON-serialisable) so it crosses process and machine
boundaries unchanged.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "Conditioning",
    "CameraSpec",
    "ShotTask",
    "Retime",
    "TakePlan",
    "TransitionSpec",
    "ShotPlan",
    "RenderPlan",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conditioning(_Frozen):
    """A picture a task is conditioned on: a file from the storyboard, or another task's last
    frame; or a video (a layout, a mask), from the storyboard or a take (the shot's animatic),
    sampled at the task's rate from `first_frame` on (see `video_frames`)."""

    role: Literal["first_image", "last_image", "reference", "control_video", "source_video",
                  "mask", "character", "pose_video", "face_video", "background_video"]
    path: str | None = Field(default=None, description="absolute path of a storyboard file")
    sha256: str | None = Field(default=None, description="hash of the file's bytes")
    from_key: str | None = Field(
        default=None, description="key of the task or take whose last frame (as seen) this is"
    )
    name: str | None = Field(default=None, description="the character or location it depicts")
    control: str | None = Field(default=None, description="what of a layout steers the model")
    extractor: str | None = Field(default=None, description="the weights that extract it (a "
                                                             "depth model), where it needs any")
    strength: float | None = Field(default=None, description="how firmly a layout holds")
    first_frame: int = Field(default=0, description="a video's frame (at the task's rate) its "
                                                     "first frame takes: a later segment's")
    video: bool = Field(default=False, description="a video (else one picture, for a mask)")


class CameraSpec(_Frozen):
    move: str = "static"
    size: str | None = None
    angle: str | None = None
    lens: str | None = None
    speed: float = 1.0


class ShotTask(_Frozen):
    """One segment of one take: a single generator call. Its key names its pixels."""

    key: str
    shot_id: str
    take: int = Field(description="1-based take number")
    segment: int = Field(description="0-based segment number within the take")
    segments: int = Field(description="how many segments the take has")
    generator: str = Field(description="registry name: draft, synthetic or diffusers")
    model: str = Field(description="catalog name of the model variant")
    pipeline: str | None = None
    weights: str | None = Field(default=None, description="weights directory or hub id")
    revision: str | None = None
    prompt: str = Field(description="the shot's prompt with {NAME}s expanded")
    shot_prompt: str = Field(description="the prompt as written, for burn-ins and review")
    style: str | None = None
    negative: str | None = None
    camera: CameraSpec = Field(default_factory=CameraSpec)
    characters: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    num_frames: int = Field(description="frames this call generates (the model's count rule)")
    fps: float = Field(description="the rate the frames are generated at")
    conditioning: tuple[Conditioning, ...] = ()
    depends_on: str | None = Field(
        default=None,
        description="key of the task (an earlier segment) or take (a continued shot) this one needs",
    )
    gpus: int = Field(default=0, description="GPUs it runs on: the narrowest of `degrees` "
                                             "(0: a CPU worker)")
    degrees: tuple[int, ...] = Field(
        default=(), description="the gang sizes it may run on, narrowest first, when the "
                                "render chooses (gpus: auto); empty: exactly `gpus`")
    speedups: tuple[float, ...] = Field(
        default=(), description="how many times faster than on one GPU, by `degrees`")
    estimate_seconds: float = Field(
        description="estimated seconds on one GPU (CPU-seconds for draft): its work")
    title: str = Field(default="", description="shot code and notes for draft cards")
    dialogue: tuple[tuple[str, str], ...] = Field(
        default=(), description="(character, line): only for a generator that makes sound")
    sound: str | None = Field(default=None, description="effects in words, likewise")
    options: dict[str, JsonValue] = Field(default_factory=dict)

    def conditioning_for(self, role: str) -> list[Conditioning]:
        return [c for c in self.conditioning if c.role == role]

    def gang_sizes(self) -> tuple[int, ...]:
        """The GPU counts it may run on (a gang of one process per GPU), narrowest first."""
        return self.degrees or (self.gpus,)

    def speedup_on(self, gpus: int) -> float:
        """How many times faster than on one GPU it runs on a gang of `gpus`."""
        sizes = self.gang_sizes()
        return self.speedups[sizes.index(gpus)] if gpus in sizes and self.speedups else 1.0

    def seconds_on(self, gpus: int) -> float:
        """Estimated seconds it takes on a gang of `gpus`."""
        return self.estimate_seconds / self.speedup_on(gpus)

    def gpu_seconds_on(self, gpus: int) -> float:
        return self.seconds_on(gpus) * max(1, gpus)


class Retime(_Frozen):
    """How a take's generated frames become exactly the shot's cut frames.

    Segments are joined dropping each later segment's first frame (it repeats the previous
    segment's last frame). Cut frame i (0-based) shows joined source frame
    floor(i * source_fps / cut_fps + 1/2); frames past the last one needed are trimmed.
    """

    source_fps: str = Field(description="exact rate of the generated frames, as a fraction")
    cut_fps: str = Field(description="exact rate of the cut, as a fraction")
    source_frames: int = Field(description="frames after joining segments")
    cut_frames: int

    def source_index(self, cut_frame: int) -> int:
        if not 0 <= cut_frame < self.cut_frames:
            raise IndexError(f"cut frame {cut_frame} outside 0..{self.cut_frames - 1}")
        ratio = Fraction(self.source_fps) / Fraction(self.cut_fps)
        return min(int(cut_frame * ratio + Fraction(1, 2)), self.source_frames - 1)

    def source_indices(self) -> list[int]:
        return [self.source_index(i) for i in range(self.cut_frames)]


class TakePlan(_Frozen):
    """One rendering of a shot with one seed, retimed to the cut's rate and exact length."""

    key: str = Field(description="content key of the finished, retimed take")
    shot_id: str
    take: int
    seed: int
    selected: bool
    tasks: tuple[ShotTask, ...]
    retime: Retime
    width: int = Field(description="delivery width of the published take")
    height: int

    @property
    def final_task(self) -> ShotTask:
        return self.tasks[-1]


class TransitionSpec(_Frozen):
    type: Literal["cut", "dissolve", "fade_from_black"] = "cut"
    frames: int = 0


class ShotPlan(_Frozen):
    id: str
    index: int = Field(description="0-based position in the cut")
    frames: int = Field(description="exact length in cut frames")
    seconds: float
    record_in: int = Field(description="first cut frame (0-based) where this shot is seen")
    record_out: int = Field(description="one past the last cut frame of this shot")
    transition: TransitionSpec = Field(default_factory=TransitionSpec)
    fade_out: int = Field(default=0, description="last frames fading to black (0: none)")
    model: str
    generator: str
    prompt: str
    continues: str | None = None
    select: int
    takes: tuple[TakePlan, ...]
    fallback: TakePlan | None = Field(
        default=None, description="a draft of the shot, rendered instead when a deadline nears")
    reduced: TakePlan | None = Field(
        default=None, description="the selected take at fewer steps: what a deadline renders "
                                  "instead when the render asks for fewer steps, not a draft")
    still: TakePlan | None = Field(
        default=None, description="one frame of the shot, held for its length: its keyframe "
                                  "still (render --stills); None for a shot whose panel "
                                  "(image:) is its still, or whose model makes none")
    notes: str | None = None
    estimate_seconds: float
    line: int = Field(default=0, description="line of the shot in the storyboard")
    dialogue: tuple[tuple[str, str], ...] = Field(default=(), description="(character, line)")
    sound: str | None = Field(default=None, description="effects and ambience, in words")
    audio: str | None = Field(
        default=None, description="absolute path of the shot's sound file (its temp track)")
    audio_sha256: str | None = None
    sound_source: Literal["generated", "none", "file"] = Field(
        default="generated", description="what the shot is heard through: its take's own sound "
                                         "(if its model makes any), nothing, or its audio file")

    @property
    def selected_take(self) -> TakePlan:
        return self.takes[self.select - 1]

    def stand_ins(self) -> list[TakePlan]:
        """The takes shown instead of the selected one: the draft, the fewer-steps take, the
        still."""
        return [take for take in (self.fallback, self.reduced, self.still) if take is not None]


class RenderPlan(_Frozen):
    previz: int = 1
    storyboard: str = Field(description="path of the storyboard this was compiled from")
    project: str
    sequence: str
    fps: str = Field(description="the cut's rate as written (23.976, 24, ...)")
    fps_exact: str = Field(description="the cut's rate as an exact fraction (24000/1001)")
    width: int
    height: int
    frames: int = Field(description="length of the cut in frames")
    timecode_start: str = "01:00:00:00"
    audio: str | None = None
    ducking: float = Field(default=0.0, description="dB the bed dips under shots with dialogue")
    shots: tuple[ShotPlan, ...]
    edit_key: str = Field(description="hash of the edit: selected takes and record frames")
    estimate_seconds: float = Field(description="estimated GPU-seconds for every take")
    warnings: tuple[str, ...] = ()

    def shot(self, shot_id: str) -> ShotPlan:
        for shot in self.shots:
            if shot.id == shot_id:
                return shot
        raise KeyError(shot_id)

    def tasks(self) -> list[ShotTask]:
        """Every task, each after the tasks it depends on (with the drafts and stills that
        takes wait on: `needed_takes`)."""
        ordered: list[ShotTask] = []
        seen: set[str] = set()
        needed = self.needed_takes()
        by_key = {t.key: t for take in needed for t in take.tasks}
        take_tasks = {take.key: take.tasks for take in needed}

        def visit(task: ShotTask) -> None:
            if task.key in seen:
                return
            seen.add(task.key)
            if task.depends_on in by_key:
                visit(by_key[task.depends_on])
            for needed in take_tasks.get(task.depends_on or "", ()):
                visit(needed)
            ordered.append(task)

        for task in by_key.values():
            visit(task)
        return ordered

    def takes(self) -> list[TakePlan]:
        return [take for shot in self.shots for take in shot.takes]

    def needed_takes(self) -> list[TakePlan]:
        """The takes, and the shots' drafts and stills that takes wait on (a layout drawn from
        a shot's own animatic; an approved still, the first frame of its motion pass)."""
        takes = self.takes()
        waited_on = {task.depends_on for take in takes for task in take.tasks}
        return takes + [take for shot in self.shots for take in (shot.fallback, shot.still)
                        if take is not None and take.key in waited_on]

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps_exact)
