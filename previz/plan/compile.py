"""Stage 2 entry: `plan_from_storyboard` compiles a Storyboard into a RenderPlan.

Pure: no ray, no torch, no network, no file reads (the loader already hashed every file).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from previz.catalog import (
    CATALOG,
    GANG_SIZES,
    PLACEMENT_OPTIONS,
    Ability,
    ModelSpec,
    known_model_names,
    resolve_model,
)
from previz.errors import InvalidInput, Problem
from previz.generate.registry import generator_declaration, pixel_neutral_options
from previz.generate.types import GeneratorKind
from previz.plan.types import (
    CameraSpec,
    Conditioning,
    RenderPlan,
    Retime,
    ShotPlan,
    ShotTask,
    TakePlan,
    TransitionSpec,
)
from previz.storyboard.checks import PROMPT_NAME
from previz.storyboard.errors import did_you_mean, field_name
from previz.storyboard.model import LAYOUT_ANIMATIC, Shot, Storyboard, parse_size
from previz.storyboard.timing import frames_of

__all__ = ["plan_from_storyboard", "KEY_VERSION", "reduced_steps"]

# Bump when the meaning of a key changes, so old takes are not mistaken for new ones.
KEY_VERSION = 1
# A deadline that asks for fewer steps renders a shot at a quarter of its steps, at least 4 (below
# that a diffusion model makes noise, not a rougher picture); shots already at 4 or fewer get the
# draft animatic instead.
REDUCED_STEPS_DIVISOR = 4
REDUCED_STEPS_MIN = 4


def plan_from_storyboard(board: Storyboard, *, node_gpus: int | None = None) -> RenderPlan:
    """Compile a validated storyboard into a render plan. `node_gpus`: the most GPUs a node of
    the cluster has, when known (a shot's `gpus:` may not ask for more).

    1. resolve each shot's settings and model variant (by what the shot needs);
    2. do the frame arithmetic: cut frames, model frames, segments, retiming;
    3. build take tasks in dependency order, so continued shots' keys are known;
    4. place shots on the record timeline, transitions overlapping;
    5. estimate GPU-seconds and fingerprint the edit.
    Raises InvalidInput with every located problem found.
    """
    compiler = _Compiler(board, node_gpus)
    resolved = [compiler.resolve_shot(index, shot) for index, shot in enumerate(board.shots)]
    if compiler.problems:
        raise InvalidInput(sorted(compiler.problems, key=lambda p: (p.line, p.column)))
    takes, reduced = compiler.build_takes(resolved)
    shots = compiler.place_on_timeline(resolved, takes, reduced)
    return compiler.plan(shots)


@dataclass
class _ResolvedShot:
    index: int
    shot: Shot
    spec: ModelSpec
    frames: int
    source_fps: Fraction
    segment_frames: list[int]
    width: int
    height: int
    steps: int
    guidance: float
    seed: int
    negative: str | None
    style: str | None
    prompt: str
    characters: tuple[str, ...]
    locations: tuple[str, ...]
    use_references: bool
    options: dict[str, Any]
    gpus: tuple[int, ...]  # the gang sizes it may run on, narrowest first; (0,): CPU workers
    weights: str | None
    revision: str | None
    notes: list[str] = field(default_factory=list)
    # The variant that makes the shot's keyframe still (None: none is made), and whether this
    # is the still being built (one frame, from the text and the cast alone).
    still_spec: ModelSpec | None = None
    still_weights: tuple[str | None, str | None] = (None, None)  # (weights, revision)
    still: bool = False


class _Compiler:
    def __init__(self, board: Storyboard, node_gpus: int | None = None):
        self.board = board
        self.node_gpus = node_gpus
        self.stills: dict[str, TakePlan | None] = {}
        self.fps = board.fps_fraction
        self.problems: list[Problem] = []
        self.warnings: list[str] = []
        # Options left out of every take key: they change memory or speed, not pixels.
        self.pixel_neutral = pixel_neutral_options() | PLACEMENT_OPTIONS

    def problem(self, loc: tuple, message: str) -> None:
        line, column = self.board.locate(loc)
        self.problems.append(Problem(self.board.source, line, column, message))

    def setting(self, shot: Shot, index: int, name: str) -> tuple[Any, tuple]:
        """A shot's value for an overridable setting, and where it was written."""
        value = getattr(shot, name)
        if value is not None:
            return value, ("shots", index, name)
        return getattr(self.board.defaults, name), ("defaults", name)

    # 1. settings and model
    def resolve_shot(self, index: int, shot: Shot) -> _ResolvedShot | None:
        model_name, model_loc = self.setting(shot, index, "model")
        model_name = model_name or "draft"
        where = f"shots[{index}] ({shot.id})"
        if model_name not in CATALOG and resolve_model(model_name, set())[1] == []:
            self.problem(model_loc, f"{field_name(model_loc)}: {model_name!r} is not a known model"
                         f"{did_you_mean(model_name, known_model_names())} — `previz models` "
                         "lists them")
            return None
        names = [m.group(1) for m in PROMPT_NAME.finditer(shot.prompt)]
        characters = tuple(dict.fromkeys(n for n in names if n in self.board.characters))
        locations = tuple(dict.fromkeys(n for n in names if n in self.board.locations))
        references_mode = self.setting(shot, index, "references")[0] or "auto"
        has_references = any(self.board.characters[c].reference for c in characters) or any(
            self.board.locations[n].reference for n in locations)

        needs = {Ability.TEXT}
        if shot.image or shot.continues or shot.still:
            needs.add(Ability.FIRST_IMAGE)
        if shot.last_image:
            needs.add(Ability.LAST_IMAGE)
        if not self._check_layout(shot, index) or not self._check_still(shot, index):
            return None
        if shot.performance:
            needs.add(Ability.PERFORMANCE)
        if shot.mask:
            needs.add(Ability.MASK)  # over a still (image:) or a plate (layout: control: video)
        elif shot.layout:
            needs.add(Ability.SOURCE_VIDEO if shot.layout.control == "video"
                      else Ability.CONTROL_VIDEO)
        if has_references and references_mode != "text":
            needs.add(Ability.REFERENCE)
        frames = frames_of(shot.duration, self.fps)
        spec, notes = self._choose_variant(index, shot, model_name, model_loc, needs,
                                           references_mode, frames)
        if spec is None:
            return None
        use_references = Ability.REFERENCE in needs and spec.can(Ability.REFERENCE)
        performer = shot.performance.character if shot.performance else None
        if has_references and references_mode == "auto" and not use_references and \
                set(characters + locations) - {performer}:
            notes.append(f"{shot.id}: {spec.name} cannot take reference images; "
                         f"{', '.join(characters + locations)} described in text only")

        source_fps = Fraction(spec.fps).limit_denominator(1001) if spec.fps else self.fps
        needed = _source_frames_needed(frames, source_fps, self.fps)
        segment_frames = _segments(spec, needed)
        size = self._generation_size(index, shot, spec)
        if size is None or not self._check_videos(shot, index, size, frames):
            return None
        steps = self.setting(shot, index, "steps")[0] or spec.default_steps
        guidance = self.setting(shot, index, "guidance")[0]
        seed = self.setting(shot, index, "seed")[0]
        options = {**(self.board.defaults.options or {}), **(shot.options or {})}
        gpus = self._placement(shot, index, spec, options, max(segment_frames), size)
        if gpus is None:
            return None
        still_spec = None
        if not shot.image:  # (a panel is its shot's still)
            candidate = resolve_model(model_name, {Ability.TEXT} | (
                {Ability.REFERENCE} if use_references else set()))[0]
            still_spec = candidate if candidate is not None and candidate.makes_stills else None
        weights = self.board.weights_for(spec.name) or self.board.weights_for(model_name)
        if shot.still and still_spec is None:
            where = ("shots", index, "still")
            self.problem(where, f"{field_name(where)}: approved, but {spec.name} makes no "
                         "stills (it is not trained on single images) — render the shot's "
                         "first frame with image: instead, or use a model that makes stills "
                         "(Wan, LTX-Video, HunyuanVideo)")
            return None
        still_weights = (self.board.weights_for(still_spec.name) or self.board.weights_for(
            model_name)) if still_spec is not None else None
        prompt = self._expand(shot.prompt)
        style = self.setting(shot, index, "style")[0]
        notes.extend(_prompt_cut(shot.id, spec, ", ".join(filter(None, (prompt, style))),
                                 options))
        self.warnings.extend(f"{where}: {note}" if not note.startswith(shot.id) else note
                             for note in notes)
        return _ResolvedShot(
            index=index, shot=shot, spec=spec, frames=frames, source_fps=source_fps,
            segment_frames=segment_frames, width=size[0], height=size[1], steps=steps,
            guidance=spec.default_guidance if guidance is None else guidance,
            seed=_default_seed(self.board, shot) if seed is None else seed,
            negative=self.setting(shot, index, "negative")[0],
            style=style, prompt=prompt, characters=characters, locations=locations,
            use_references=use_references, options=options, gpus=gpus,
            weights=weights.path if weights else spec.repo,
            revision=weights.revision if weights else spec.revision,
            notes=notes, still_spec=still_spec,
            still_weights=((still_weights.path, still_weights.revision) if still_weights
                           else (still_spec.repo, still_spec.revision) if still_spec
                           else (None, None)),
        )

    def _check_still(self, shot: Shot, index: int) -> bool:
        """An approved still starts the shot: not with another first frame."""
        if not shot.still:
            return True
        other = "image:" if shot.image else "continue:" if shot.continues else None
        if other is None and shot.layout is not None and shot.layout.source == LAYOUT_ANIMATIC:
            other = "layout: animatic"
        if other is None:
            return True
        where = ("shots", index, "still")
        self.problem(where, f"{field_name(where)}: approved with {other} — the shot would start "
                     f"from two first frames; drop still: (the {other.rstrip(':')} starts it) or "
                     f"{other}")
        return False

    def _check_layout(self, shot: Shot, index: int) -> bool:
        """What a layout and a mask may be combined with (a model takes one video), and the
        models a layout or a performance video needs."""
        mask, layout = shot.mask, shot.layout
        where = ("shots", index, "mask")
        if mask and layout is not None and layout.control != "video":
            self.problem(where, f"{field_name(where)}: {mask!r} with a layout of control: "
                         f"{layout.control} — a model takes one video: the layout's "
                         f"{layout.control} or a masked plate; use control: video (the layout "
                         "is the plate the mask is cut from), or drop mask:")
            return False
        if mask and layout is not None and shot.image:
            self.problem(where, f"{field_name(where)}: {mask!r} with both image: and layout: — "
                         "a mask is cut from one picture; drop image: (inpaint the layout) or "
                         "layout: (a cinemagraph of the still)")
            return False
        if mask and layout is None and not shot.image:
            self.problem(where, f"{field_name(where)}: {mask!r} masks nothing — give image: (a "
                         "still: only the white region moves, a cinemagraph) or layout: with "
                         "control: video (a plate to inpaint)")
            return False
        if layout is not None and layout.control in EXTRACTORS and \
                self.board.weights_for(EXTRACTORS[layout.control][0]) is None:
            where = ("shots", index, "layout")
            name, what, example = EXTRACTORS[layout.control]
            self.problem(where, f"{field_name(where)}: control: {layout.control} needs a {what} "
                         "on the workers, and the storyboard names none — add weights: "
                         f"{{{name}: /mnt/models/{example.split('/')[-1]}}} (a transformers "
                         "folder on the workers, one beside the storyboard, or the hub id "
                         f"{example}), or use control: edges")
            return False
        if shot.performance is not None and shot.performance.video and \
                self.board.weights_for(EXTRACTORS["pose"][0]) is None:
            where = ("shots", index, "performance", "video")
            self.problem(where, f"{field_name(where)}: its pose and face are found by a pose "
                         "model on the workers, and the storyboard names none — add weights: "
                         "{pose: /mnt/models/vitpose-base-simple} (a transformers folder on the "
                         "workers, one beside the storyboard, or the hub id "
                         f"{EXTRACTORS['pose'][2]}), or give pose: and face: (Wan-Animate's "
                         "preprocessed videos) instead")
            return False
        if layout is not None and layout.source == LAYOUT_ANIMATIC and shot.continues:
            where = ("shots", index, "layout")
            self.problem(where, f"{field_name(where)}: animatic with continue: — a shot's task "
                         "waits on one take, and this one already waits on "
                         f"{shot.continues}; lay it out from a file (a playblast) instead")
            return False
        return True

    def _check_videos(self, shot: Shot, index: int, size: tuple[int, int], frames: int) -> bool:
        """Layouts, video masks and performances long enough for the shot, and a mask of the
        shot's aspect."""
        needed = float(frames / self.fps)
        good = True
        named = [(shot.layout.source, ("shots", index, "layout"))] if (
            shot.layout is not None and shot.layout.source != LAYOUT_ANIMATIC) else []
        if shot.mask:
            named.append((shot.mask, ("shots", index, "mask")))
        if shot.performance is not None:
            named += [(getattr(shot.performance, name), ("shots", index, "performance", name))
                      for name in ("video", "pose", "face", "background", "mask")
                      if getattr(shot.performance, name)]
        for relative, loc in named:
            checked = self.board.file(relative)
            # (half a frame of slack: a header's length is rounded to 10 ms)
            if checked.seconds is not None and checked.seconds + 0.5 / float(self.fps) < needed:
                self.problem(loc, f"{field_name(loc)}: {relative!r} is {checked.seconds:.2f} s "
                             f"and the shot {needed:.2f} s — frame i of the shot is drawn from "
                             "its frame at the same time; export it as long as the shot, or "
                             "shorten the shot")
                good = False
        if shot.mask:
            checked, loc = self.board.file(shot.mask), ("shots", index, "mask")
            width, height = checked.size
            if abs(width * size[1] - height * size[0]) > 0.01 * height * size[0]:
                self.problem(loc, f"{field_name(loc)}: {shot.mask!r} is {width}x{height}, not "
                             f"the shot's aspect ({size[0]}x{size[1]}) — a mask is laid over "
                             "the whole frame: make it that shape")
                good = False
        return good

    def _placement(self, shot: Shot, index: int, spec: ModelSpec, options: dict[str, Any],
                   frames: int, size: tuple[int, int]) -> tuple[int, ...] | None:
        """The gang sizes the shot may run on. `gpus:` (shot, then defaults; `options: {gpus}`
        is its older spelling) is a size or `auto`, checked against what the model can split
        to; `device: cpu` places the shot on CPU workers (tiny models, smoke tests)."""
        def where(name: str) -> tuple:
            return (("shots", index, "options", name) if name in (shot.options or {})
                    else ("defaults", "options", name))

        device = options.get("device", "gpu")
        if device not in ("gpu", "cpu"):
            self.problem(where("device"), f"{field_name(where('device'))}: {device!r} is not a "
                         "device — use cpu (CPU workers: tiny models, smoke tests) or gpu")
            return None
        gpus, loc = self.setting(shot, index, "gpus")
        if gpus is None and "gpus" in options:
            gpus, loc = options["gpus"], where("gpus")
            if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
                self.problem(loc, f"{field_name(loc)}: {gpus!r} is not a GPU count — use a "
                             "whole number such as 1")
                return None
        if device == "cpu":
            return (0,)
        if gpus is None or (gpus == "auto" and not spec.needs_gpu and not spec.splits):
            return (spec.gpus,)
        if gpus == 0 or (not spec.needs_gpu and not spec.splits):
            return (0,) if gpus == 0 else self._no_gpus(loc, spec, gpus)
        width, height = size
        largest = self.node_gpus
        if gpus == "auto":
            fitting = tuple(n for n in GANG_SIZES if (largest is None or n <= largest)
                            and spec.split_problem(n, frames, width, height) is None)
            return fitting
        problem = spec.split_problem(gpus, frames, width, height)
        if problem is not None:
            fitting = [str(n) for n in GANG_SIZES
                       if spec.split_problem(n, frames, width, height) is None
                       and (largest is None or n <= largest)]
            self.problem(loc, f"{field_name(loc)}: {gpus} — {problem}; use "
                         f"{', '.join(fitting)} or auto")
            return None
        if largest is not None and gpus > largest:
            self.problem(loc, f"{field_name(loc)}: {gpus} — the largest node of the cluster has "
                         f"{largest} GPU(s), and a shot's GPUs must be on one node; use "
                         f"{largest if largest in GANG_SIZES else 1} or auto")
            return None
        return (gpus,)

    def _no_gpus(self, loc: tuple, spec: ModelSpec, gpus: Any) -> None:
        self.problem(loc, f"{field_name(loc)}: {gpus!r} — {spec.name} draws on CPU workers and "
                     "uses no GPUs; remove gpus: or choose a video model")
        return None

    def _choose_variant(self, index, shot, model_name, model_loc, needs, references_mode, frames):
        notes: list[str] = []
        for _ in range(2):  # a second pass when segmenting adds the need for a first image
            spec, candidates = resolve_model(model_name, needs)
            if spec is None and Ability.REFERENCE in needs and references_mode == "auto":
                needs = needs - {Ability.REFERENCE}
                spec, candidates = resolve_model(model_name, needs)
            if spec is None:
                missing = sorted(a.value for a in needs - _union_abilities(candidates, model_name))
                wanted = ", ".join(sorted(a.value for a in needs - {Ability.TEXT}))
                fix = _models_with(needs)
                self.problem(model_loc if model_loc[0] == "shots" else ("shots", index),
                             f"shots[{index}] ({shot.id}): model {model_name!r} cannot be "
                             f"conditioned on {', '.join(missing) or wanted}, which this shot needs "
                             f"({_why(shot, needs)}) — use {fix}")
                return None, notes
            source_fps = Fraction(spec.fps).limit_denominator(1001) if spec.fps else self.fps
            needed = _source_frames_needed(frames, source_fps, self.fps)
            if spec.max_frames is None or needed <= spec.max_frames or Ability.FIRST_IMAGE in needs:
                break
            needs = needs | {Ability.FIRST_IMAGE}
        if model_name in CATALOG and spec.name != model_name:
            notes.append(f"{shot.id}: {spec.name} chosen for {model_name} "
                         f"(needs {', '.join(sorted(a.value for a in needs))})")
        return spec, notes

    def _generation_size(self, index: int, shot: Shot, spec: ModelSpec) -> tuple[int, int] | None:
        size_text, loc = self.setting(shot, index, "size")
        if size_text is None:
            return spec.default_size or self.board.size
        width, height = parse_size(size_text, "size")
        if spec.fixed_size and (width, height) != spec.default_size:
            only = "x".join(map(str, spec.default_size))
            self.problem(loc, f"{field_name(loc)}: {spec.name} makes {only} only (its learned "
                         f"position embeddings fix the size), not {size_text!r} — use {only} "
                         "or leave size out, and let the cut scale it to delivery")
            return None
        multiple = spec.size_multiple
        if width % multiple or height % multiple:
            fit = f"{width // multiple * multiple}x{height // multiple * multiple}"
            self.problem(loc, f"{field_name(loc)}: {spec.name} cannot make {size_text!r} — width and "
                         f"height must be multiples of {multiple} (such as {fit})")
            return None
        if spec.max_pixels and width * height > spec.max_pixels * 1.05:
            default = "x".join(map(str, spec.default_size or self.board.size))
            self.problem(loc, f"{field_name(loc)}: {size_text!r} is larger than {spec.name} makes "
                         f"({spec.max_pixels:,} pixels at most) — use {default} and let the cut "
                         "scale it to delivery")
            return None
        return width, height

    def _expand(self, prompt: str) -> str:
        def description(match) -> str:
            name = match.group(1)
            entry = self.board.characters.get(name) or self.board.locations[name]
            return entry.description

        return PROMPT_NAME.sub(description, prompt)

    # 3. takes and tasks
    def build_takes(self, resolved: list[_ResolvedShot]
                    ) -> tuple[dict[str, list[TakePlan]], dict[str, TakePlan | None]]:
        """Each shot's takes, and its fewer-steps take for a deadline (None when its steps
        cannot be cut): that one continues what the final take continues, because an
        image-to-video variant needs that first frame whatever its steps."""
        by_id = {r.shot.id: r for r in resolved}
        takes: dict[str, list[TakePlan]] = {}
        reduced: dict[str, TakePlan | None] = {}
        stills = self.stills

        def build(item: _ResolvedShot) -> list[TakePlan]:
            if item.shot.id in takes:
                return takes[item.shot.id]
            continued_key = None
            if item.shot.continues:
                parent = build(by_id[item.shot.continues])
                continued_key = parent[by_id[item.shot.continues].shot.select - 1].key
            still = self._still(item)
            stills[item.shot.id] = still
            if item.shot.still and still is not None:
                continued_key = still.key  # the approved still starts the motion pass
            takes[item.shot.id] = [self._take(item, number, continued_key)
                                   for number in range(1, item.shot.takes + 1)]
            final = generator_declaration(item.spec.generator).final_quality
            steps = reduced_steps(item.steps) if final else None
            reduced[item.shot.id] = (self._take(replace(item, steps=steps), item.shot.select,
                                                continued_key) if steps is not None else None)
            return takes[item.shot.id]

        for item in resolved:
            build(item)
        return takes, reduced

    def _still(self, item: _ResolvedShot) -> TakePlan | None:
        """The shot's keyframe still: one frame of the variant that makes it from the text and
        the cast, of the selected take's seed, held for the shot's length."""
        spec = item.still_spec
        if spec is None:
            return None
        fps = Fraction(spec.fps).limit_denominator(1001) if spec.fps else self.fps
        return self._take(replace(
            item, spec=spec, source_fps=fps, segment_frames=[1], still=True,
            steps=item.steps if spec.name == item.spec.name else (
                self.setting(item.shot, item.index, "steps")[0] or spec.default_steps),
            gpus=item.gpus if item.gpus == (0,) else (spec.gpus,),
            weights=item.still_weights[0], revision=item.still_weights[1]),
            item.shot.select, continued_key=None)

    def _take(self, item: _ResolvedShot, number: int, continued_key: str | None) -> TakePlan:
        shot, spec = item.shot, item.spec
        seed = (item.seed + number - 1) % 2**63
        references = self._references(item) if item.use_references else []
        declaration = generator_declaration(spec.generator)
        key_options = {k: v for k, v in sorted(item.options.items())
                       if k not in self.pixel_neutral}
        tasks: list[ShotTask] = []
        first_frame = 0  # of the take's generated frames, where this segment's begin
        for segment, num_frames in enumerate(item.segment_frames):
            if segment:
                first_frame += item.segment_frames[segment - 1] - 1  # (each repeats one)
            conditioning: list[Conditioning] = []
            depends_on = None
            if segment == 0 and shot.image:
                conditioning.append(self._file_condition("first_image", shot.image))
            elif segment == 0 and continued_key:
                conditioning.append(Conditioning(role="first_image", from_key=continued_key))
                depends_on = continued_key
            elif segment > 0:
                conditioning.append(Conditioning(role="first_image", from_key=tasks[-1].key))
                depends_on = tasks[-1].key
            if shot.last_image and segment == len(item.segment_frames) - 1 and not item.still:
                conditioning.append(self._file_condition("last_image", shot.last_image))
            conditioning.extend(references)
            videos = [] if item.still else self._videos(item, first_frame)
            conditioning.extend(videos)
            if segment == 0 and any(c.from_key for c in videos) and depends_on is None:
                depends_on = next(c.from_key for c in videos if c.from_key)  # the animatic
            fields = dict(
                shot_id=shot.id, take=number, segment=segment,
                segments=len(item.segment_frames), generator=spec.generator, model=spec.name,
                pipeline=spec.pipeline, weights=item.weights, revision=item.revision,
                prompt=item.prompt, shot_prompt=shot.prompt, style=item.style,
                negative=item.negative, camera=CameraSpec(**_camera(shot)),
                characters=item.characters, locations=item.locations, seed=seed,
                steps=item.steps, guidance=item.guidance, width=item.width, height=item.height,
                num_frames=num_frames, fps=float(item.source_fps),
                conditioning=tuple(conditioning), depends_on=depends_on,
                gpus=item.gpus[0],
                degrees=item.gpus if item.gpus[0] else (),
                speedups=tuple(spec.speedup(n) for n in item.gpus) if item.gpus[0] else (),
                estimate_seconds=_estimate(spec, num_frames, item.steps, item.width, item.height,
                                           item.options),
                title=shot.notes or "", options=item.options,
                **(self._voiced(shot) if spec.makes_sound else {}),
            )
            key = _key({
                "kind": "task", "key_version": KEY_VERSION,
                "generator_version": declaration.version,
                **{k: v for k, v in fields.items()
                   if k not in ("shot_id", "take", "segments", "weights", "gpus",
                                "degrees", "speedups", "estimate_seconds", "options", "title", "depends_on",
                                "dialogue", "sound")},
                # what a generator that makes sound voices (absent otherwise: keys unchanged)
                **{k: fields[k] for k in ("dialogue", "sound") if fields.get(k)},
                "conditioning": [_key_fields(c) for c in conditioning],
                "camera": fields["camera"].model_dump(),
                "title": (shot.id, shot.notes) if declaration.title_in_pixels else None,
                "options": key_options,
            })
            tasks.append(ShotTask(key=key, **fields))
        retime = Retime(
            source_fps=str(item.source_fps), cut_fps=str(self.fps),
            source_frames=sum(item.segment_frames) - (len(item.segment_frames) - 1),
            cut_frames=item.frames,
        )
        width, height = self.board.size
        take_key = _key({"kind": "take", "key_version": KEY_VERSION,
                         "tasks": [t.key for t in tasks], "retime": retime.model_dump(),
                         "delivery": [width, height]})
        return TakePlan(key=take_key, shot_id=shot.id, take=number, seed=seed,
                        selected=number == shot.select, tasks=tuple(tasks), retime=retime,
                        width=width, height=height)

    def _videos(self, item: _ResolvedShot, first_frame: int) -> list[Conditioning]:
        """A shot's layout and mask as the model takes them (none for a model that takes
        neither: a draft of the shot draws it without them)."""
        shot, spec = item.shot, item.spec
        videos: list[Conditioning] = []
        layout = shot.layout
        if layout is not None and (spec.can(Ability.CONTROL_VIDEO) or spec.can(
                Ability.SOURCE_VIDEO) or spec.can(Ability.MASK)):
            role = "source_video" if layout.control == "video" else "control_video"
            if layout.source == LAYOUT_ANIMATIC:
                source = Conditioning(role=role, from_key=self._animatic_key(item))
            else:
                source = self._file_condition(role, layout.source)
            extractor = self.board.weights_for(EXTRACTORS[layout.control][0]) \
                if layout.control in EXTRACTORS else None
            videos.append(source.model_copy(update={
                "control": layout.control, "strength": layout.strength,
                "first_frame": first_frame, "video": True,
                "extractor": extractor.path if extractor else None}))
        performance = shot.performance
        if performance is not None and spec.can(Ability.PERFORMANCE):
            character = self.board.characters[performance.character]
            # (the character's reference, and how it is put in: `control` animate or replace)
            videos.append(self._file_condition("character", character.reference[0],
                                               performance.character).model_copy(
                update={"control": performance.mode}))
            if performance.video:  # its pose, face, plate and region found by the pose model
                extractor = self.board.weights_for(EXTRACTORS["pose"][0]).path
                parts = [("pose_video", "pose"), ("face_video", "face")] + (
                    [("background_video", "plate"), ("mask", "performer")]
                    if performance.mode == "replace" else [])
                videos += [self._file_condition(role, performance.video).model_copy(update={
                    "first_frame": first_frame, "video": True, "control": control,
                    "extractor": extractor}) for role, control in parts]
            for role, relative in (("pose_video", performance.pose),
                                   ("face_video", performance.face),
                                   ("background_video", performance.background),
                                   ("mask", performance.mask)):
                if relative:
                    videos.append(self._file_condition(role, relative).model_copy(update={
                        "first_frame": first_frame, "video": True}))
        if shot.mask and spec.can(Ability.MASK):
            mask = self._file_condition("mask", shot.mask)
            videos.append(mask.model_copy(update={
                "first_frame": first_frame, "video": self.board.file(shot.mask).seconds
                is not None}))
        return videos

    def _animatic_key(self, item: _ResolvedShot) -> str:
        """The key of the shot's draft take (its fallback): a layout of `animatic` is it."""
        return self._take(self._as_draft(item), item.shot.select, continued_key=None).key

    def _file_condition(self, role: str, relative: str, name: str | None = None) -> Conditioning:
        checked = self.board.file(relative)
        return Conditioning(role=role, path=checked.path, sha256=checked.sha256, name=name)

    def _references(self, item: _ResolvedShot) -> list[Conditioning]:
        refs = []
        for name in item.characters:
            refs += [self._file_condition("reference", r, name)
                     for r in self.board.characters[name].reference]
        for name in item.locations:
            refs += [self._file_condition("reference", r, name)
                     for r in self.board.locations[name].reference]
        return refs

    # 4. timeline
    def place_on_timeline(self, resolved: list[_ResolvedShot], takes: dict[str, list[TakePlan]],
                          reduced: dict[str, TakePlan | None]) -> list[ShotPlan]:
        shots: list[ShotPlan] = []
        record_out = 0
        for item in resolved:
            shot = item.shot
            overlap = 0
            transition = TransitionSpec(type=shot.transition.type)
            if shot.transition.duration is not None:
                length = frames_of(shot.transition.duration, self.fps)
                transition = TransitionSpec(type=shot.transition.type, frames=length)
                if shot.transition.type == "dissolve":
                    overlap = length
            record_in = record_out - overlap
            record_out = record_in + item.frames
            shot_takes = takes[shot.id]
            fallback = None
            if generator_declaration(item.spec.generator).final_quality:
                fallback = self._take(self._as_draft(item), shot.select, continued_key=None)
            shots.append(ShotPlan(
                id=shot.id, index=item.index, frames=item.frames,
                seconds=float(item.frames / self.fps), record_in=record_in,
                record_out=record_out, transition=transition,
                fade_out=frames_of(shot.fade_out, self.fps) if shot.fade_out else 0,
                model=item.spec.name,
                generator=item.spec.generator, prompt=shot.prompt, continues=shot.continues,
                select=shot.select, takes=tuple(shot_takes), fallback=fallback,
                reduced=reduced[shot.id], still=self.stills.get(shot.id), notes=shot.notes,
                estimate_seconds=sum(t.gpu_seconds_on(t.gpus) for take in shot_takes
                                     for t in take.tasks),
                line=self.board.locate(("shots", item.index))[0],
                **self._sound(item),
            ))
        return shots

    @staticmethod
    def _voiced(shot) -> dict[str, Any]:
        """What a generator that makes sound is given to voice: not when the shot is heard
        through its own file, or not at all."""
        if shot.audio != "generated":
            return {}
        return {"dialogue": tuple((d.character, d.line) for d in shot.dialogue),
                "sound": shot.sound}

    def _sound(self, item: _ResolvedShot) -> dict[str, Any]:
        """The shot's sound: its dialogue and effects in words, and the sound file that is its
        temp track; what will not be heard is noted."""
        shot = item.shot
        sound = {"dialogue": tuple((d.character, d.line) for d in shot.dialogue),
                 "sound": shot.sound}
        if shot.audio not in ("generated", "none"):
            checked = self.board.file(shot.audio)
            if checked.seconds is not None and checked.seconds > item.frames / self.fps:
                self.warnings.append(
                    f"{shot.id}: audio {shot.audio} is {checked.seconds:.2f} s, the shot "
                    f"{float(item.frames / self.fps):.2f} s — its sound is cut at the shot's "
                    "end")
            return {**sound, "audio": checked.path, "audio_sha256": checked.sha256,
                    "sound_source": "file"}
        if shot.audio == "none":
            return {**sound, "sound_source": "none"}
        if (shot.dialogue or shot.sound) and shot.audio == "generated" and \
                not item.spec.makes_sound:
            self.warnings.append(
                f"{shot.id}: {item.spec.name} makes no sound — its dialogue and sound are "
                "shown, not heard; give audio: FILE for a temp track")
        return sound

    def _as_draft(self, item: _ResolvedShot) -> _ResolvedShot:
        """The same shot as a draft animatic: what a deadline falls back to."""
        draft = CATALOG["draft"]
        return replace(item, spec=draft, source_fps=self.fps, segment_frames=[item.frames],
                       width=self.board.size[0], height=self.board.size[1],
                       steps=draft.default_steps, guidance=draft.default_guidance,
                       use_references=True, options={}, gpus=(draft.gpus,), weights=None,
                       revision=None)

    # 5. the plan
    def plan(self, shots: list[ShotPlan]) -> RenderPlan:
        width, height = self.board.size
        audio = self.board.file(self.board.audio) if self.board.audio else None
        edit_key = _key({
            "kind": "edit", "key_version": KEY_VERSION, "fps": str(self.fps),
            "size": [width, height], "audio": audio.sha256 if audio else None,
            **({"ducking": self.board.ducking} if audio and self.board.ducking else {}),
            "shots": [[s.id, s.selected_take.key, s.record_in, s.record_out,
                       s.transition.model_dump(), [t.key for t in s.takes],
                       *([{"fade_out": s.fade_out}] if s.fade_out else []),
                       *([{"audio": s.audio_sha256}] if s.audio_sha256 else [])]
                      for s in shots],
        })
        return RenderPlan(
            storyboard=self.board.source, project=self.board.project,
            sequence=self.board.sequence, fps=self.board.fps, fps_exact=str(self.fps),
            width=width, height=height, frames=shots[-1].record_out if shots else 0,
            audio=audio.path if audio else None, ducking=self.board.ducking if audio else 0.0,
            shots=tuple(shots), edit_key=edit_key,
            estimate_seconds=sum(s.estimate_seconds for s in shots),
            warnings=tuple(self.warnings),
        )


# Controls a model extracts: the `weights:` entry that names it, what it is, and one to use.
EXTRACTORS = {
    "depth": ("depth", "depth model", "depth-anything/Depth-Anything-V2-Small-hf"),
    "pose": ("pose", "pose model", "usyd-community/vitpose-base-simple"),
}
# Fields a take key has always had; the others (a layout's, a mask's) only where they are set,
# so the keys of takes conditioned on pictures alone stay as they were.
_CONDITIONING_KEY = frozenset({"role", "sha256", "from_key", "name"})


def _key_fields(condition: Conditioning) -> dict[str, Any]:
    return {name: value for name, value in condition.model_dump(exclude={"path"}).items()
            if name in _CONDITIONING_KEY or value != Conditioning.model_fields[name].default}


def _source_frames_needed(cut_frames: int, source_fps: Fraction, cut_fps: Fraction) -> int:
    """Generated frames needed so that every cut frame has a source frame (see Retime)."""
    return int((cut_frames - 1) * source_fps / cut_fps + Fraction(1, 2)) + 1


def _segments(spec: ModelSpec, needed: int) -> list[int]:
    """Frame counts of each segment; each later segment repeats the previous one's last frame."""
    window = spec.max_frames
    if window is None or needed <= window:
        return [spec.frames.at_least(needed)]
    count = -(-(needed - 1) // (window - 1))
    last = needed - (window - 1) * (count - 1)
    return [window] * (count - 1) + [spec.frames.at_least(last)]


def reduced_steps(steps: int) -> int | None:
    """The steps a deadline's fewer-steps take uses, or None when that would not be fewer."""
    fewer = max(REDUCED_STEPS_MIN, -(-steps // REDUCED_STEPS_DIVISOR))
    return fewer if fewer < steps else None


def _estimate(spec: ModelSpec, frames: int, steps: int, width: int, height: int,
              options: dict[str, Any]) -> float:
    declaration = generator_declaration(spec.generator)
    stated = declaration.stated_seconds
    seconds = stated(options, frames, steps) if stated is not None else None
    if seconds is not None:
        return seconds
    steps = steps if declaration.steps_cost else 1
    base_w, base_h = spec.default_size or (1280, 720)
    return round(spec.cost_per_frame_step * frames * steps * (width * height) / (base_w * base_h), 3)


def _estimated_tokens(text: str) -> int:
    """About how many tokens a T5-style text encoder makes of English text: a word is one or
    two pieces, punctuation its own (no tokenizer here: the plan reads no model files)."""
    words = re.findall(r"\w+", text)
    marks = re.findall(r"[^\w\s]", text)
    return round(len(words) * 1.3) + len(marks)


def _prompt_cut(shot_id: str, spec: ModelSpec, text: str, options: dict[str, Any]) -> list[str]:
    """A note when the model's text encoder will cut the prompt short."""
    limit = options.get("max_sequence_length") or spec.text_tokens
    tokens = _estimated_tokens(text)
    if not isinstance(limit, int) or tokens <= limit:
        return []
    return [f"{shot_id}: its prompt (with the style) is about {tokens} tokens, and "
            f"{spec.name} reads {limit} — the model never sees the rest; shorten it"]


def _default_seed(board: Storyboard, shot: Shot) -> int:
    """A stable seed per shot when none is given, so a rerun reproduces the same takes."""
    digest = hashlib.sha256(f"{board.project}/{board.sequence}/{shot.id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _camera(shot: Shot) -> dict[str, Any]:
    camera = shot.camera
    return {
        "move": camera.move.value,
        "size": camera.size.value if camera.size else None,
        "angle": camera.angle.value if camera.angle else None,
        "lens": camera.lens,
        "speed": camera.speed,
    }


def _key(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _union_abilities(candidates: list[ModelSpec], name: str) -> set[Ability]:
    abilities: set[Ability] = set()
    for spec in candidates or ([CATALOG[name]] if name in CATALOG else []):
        abilities |= spec.abilities
    return abilities


def _models_with(needs: set[Ability]) -> str:
    fitting = [s.name for s in CATALOG.values() if needs <= s.abilities
               and generator_declaration(s.generator).kind is GeneratorKind.VIDEO_MODEL]
    return "a model that can, such as " + ", ".join(fitting[:4]) if fitting else "another model"


def _why(shot: Shot, needs: set[Ability]) -> str:
    reasons = []
    if Ability.FIRST_IMAGE in needs:
        reasons.append("image:" if shot.image else "continue:" if shot.continues else
                       "it is longer than one model window")
    if Ability.LAST_IMAGE in needs:
        reasons.append("last_image:")
    if Ability.REFERENCE in needs:
        reasons.append("a character with reference images and references: required")
    if Ability.CONTROL_VIDEO in needs:
        reasons.append(f"layout: with control: {shot.layout.control}")
    if Ability.SOURCE_VIDEO in needs:
        reasons.append("layout: with control: video")
    if Ability.MASK in needs:
        reasons.append("mask:")
    if Ability.PERFORMANCE in needs:
        reasons.append("performance:")
    return ", ".join(reasons)
