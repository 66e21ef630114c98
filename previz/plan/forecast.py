"""How long `previz render` of a plan takes by the clock: the work spread over its lanes, plus the
fixed costs the work alone leaves out.

    wall = preparation + cluster start + worker start and model load
           + max(work / lanes, longest chain) + assembly

- preparation: the program starting, loading the storyboard, planning, asking the store which
  takes it has;
- work: each task's cost from the catalog (GPU-seconds; CPU-seconds for the draft model), as the
  plan's `estimate_seconds` counts it, and what each task costs besides (dispatch, publishing
  its take, its ledger row); the longest chain is the longest run of tasks that wait
  for one another (a continuation waits for the take it continues);
- lanes: workers rendering at once — one per GPU for GPU work; for CPU work one per
  `CPUS_PER_CPU_WORKER` cores, as the engine starts them;
- cluster start: an embedded Ray started on this machine, or a connection to a running cluster;
- worker start and model load: a worker's process and imports, then its model's weights (the
  catalog's `load_seconds`); workers start together, so the slowest model counts;
- assembly: the cut's join, review copy, contact sheet, files and publishing, by frames and
  pixels. A first version encodes all of it; after an edit, pieces of unchanged shots are kept
  (previz.assemble.pieces), so only the frames of re-rendered shots count.

The constants were calibrated on the project's 2-core reference machine with
`benchmarks/estimates.py`, which renders the three shipped storyboards on the draft model and
prints the estimate beside the measured time (figures in the README).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from previz.plan.types import RenderPlan, ShotTask

__all__ = ["Forecast", "forecast", "assembly_seconds", "chain_seconds", "format_seconds",
           "CPUS_PER_CPU_WORKER", "DEADLINE_ASSEMBLY_MARGIN"]

CPUS_PER_CPU_WORKER = 2  # the engine's default (EngineSettings.cpus_per_cpu_worker)
# The program starting (imports), loading the storyboard, planning, asking the store.
PREPARATION_SECONDS = 1.4
# Starting Ray on this machine (GCS, raylet, the driver's connection) and stopping it after.
EMBEDDED_START_SECONDS = 5.0
# Connecting to a running cluster and leaving it.
CONNECT_SECONDS = 1.0
# A worker actor's process, imports and first call, before its model's weights load.
WORKER_START_SECONDS = 2.0
# Each task besides its generation: dispatch, publishing its take to the store, its ledger row.
TASK_SECONDS = 0.15
# Assembly: a fixed part (processes, files, publishing), and per re-encoded megapixel-frame
# (the review copy's pieces and transitions, decoded and encoded again).
ASSEMBLY_FIXED_SECONDS = 1.5
ASSEMBLY_SECONDS_PER_MEGAPIXEL_FRAME = 0.009
# The cut's sound (previz.assemble.sound: decode, place, measure loudness, write), mixed whole
# for every version. Fitted to mix_sound timed on this 2-core machine (2026-12-06): 0.59 s and
# 0.75 s for the 23 s demo with 1 and 7 sounding shots, 2.04 s and 3.49 s for the 96 s 45-shot
# sequence with 1 and 45.
SOUND_FIXED_SECONDS = 0.1
SOUND_SECONDS_PER_CUT_SECOND = 0.02
SOUND_SECONDS_PER_SHOT = 0.03
# A deadline keeps this many times the assembly estimate for assembling: it errs long, since a
# deadline is kept by stopping the rendering early.
DEADLINE_ASSEMBLY_MARGIN = 2.0


@dataclass(frozen=True)
class Forecast:
    """A render's expected wall time, by part."""

    preparation_seconds: float
    start_seconds: float
    load_seconds: float
    work_seconds: float  # seconds of every task, summed
    generation_seconds: float  # on the wall: the work over the lanes, or the longest chain
    assembly_seconds: float
    lanes: int
    unit: str  # "GPU" or "CPU": what the work's seconds are of

    @property
    def wall_seconds(self) -> float:
        return (self.preparation_seconds + self.start_seconds + self.load_seconds
                + self.generation_seconds + self.assembly_seconds)

    @property
    def fixed_seconds(self) -> float:
        """What the render costs whatever its lanes: everything but the generation."""
        return self.wall_seconds - self.generation_seconds

    def as_measured(self) -> dict[str, float]:
        """The estimate in the parts a render measures of itself (previz.render): its workers
        start, load and generate at once, so those three are one part, rendering."""
        return {"preparation": self.preparation_seconds, "cluster start": self.start_seconds,
                "rendering": self.load_seconds + self.generation_seconds,
                "assembly": self.assembly_seconds}

    def parts(self) -> dict[str, float]:
        return {"preparation": self.preparation_seconds, "cluster start": self.start_seconds,
                "worker start and model load": self.load_seconds,
                "generation": self.generation_seconds, "assembly": self.assembly_seconds}

    def describe(self) -> str:
        """`about 31 s by the clock (cluster start 5 s, …, generation 12 s on 1 CPU lane, …)`"""
        lanes = f"{self.lanes} {self.unit} lane{'s' if self.lanes != 1 else ''}"
        parts = ", ".join(
            f"{name} {format_seconds(value)}" + (f" on {lanes}" if name == "generation" else "")
            for name, value in self.parts().items() if value > 0)
        return f"about {format_seconds(self.wall_seconds)} by the clock ({parts or 'nothing to do'})"


def forecast(plan: RenderPlan, *, tasks: Iterable[ShotTask] | None = None,
             shots: Iterable[str] | None = None, lanes: int | None = None,
             gpus: int | None = None, cpus: int | None = None,
             embedded: bool = True) -> Forecast:
    """The expected wall time of rendering `tasks` (all the plan's when None) and assembling
    the cut, where `shots` (all when None) are the shots whose media change.

    `lanes` fixes the number of workers at once; else it follows from `gpus` (GPU work) or
    `cpus` (CPU work; this machine's when None), as the engine sizes its pool. Shots the render
    may widen (`gpus: auto`) get the gang sizes the engine's allotment would give them on
    `lanes` GPUs of one node.
    """
    todo = list(plan.tasks() if tasks is None else tasks)
    on_gpu = any(t.gpus for t in todo)
    if lanes is None:
        if on_gpu:
            lanes = max(1, gpus or 1)
        else:
            lanes = max(1, (cpus or os.cpu_count() or 1) // CPUS_PER_CPU_WORKER)
    sizes = _gang_sizes(todo, lanes) if on_gpu else {t.key: t.gpus for t in todo}
    cost = {t.key: t.gpu_seconds_on(sizes[t.key]) + TASK_SECONDS for t in todo}
    wall = {t.key: t.seconds_on(sizes[t.key]) + TASK_SECONDS for t in todo}
    work = sum(cost.values())
    changed = set(s.id for s in plan.shots) if shots is None else set(shots)
    changed_frames = sum(s.frames for s in plan.shots if s.id in changed)
    if not todo:
        return Forecast(PREPARATION_SECONDS, 0.0, 0.0, 0.0, 0.0,
                        assembly_seconds(plan, changed_frames), lanes,
                        "GPU" if on_gpu else "CPU")
    from previz.catalog import CATALOG

    loads = [CATALOG[t.model].load_seconds if t.model in CATALOG else 0.0 for t in todo]
    return Forecast(
        preparation_seconds=PREPARATION_SECONDS,
        start_seconds=EMBEDDED_START_SECONDS if embedded else CONNECT_SECONDS,
        load_seconds=WORKER_START_SECONDS + max(loads),
        work_seconds=work,
        generation_seconds=max(work / lanes, chain_seconds(plan, wall)),
        assembly_seconds=assembly_seconds(plan, changed_frames),
        lanes=lanes, unit="GPU" if on_gpu else "CPU")


def assembly_seconds(plan: RenderPlan, changed_frames: int | None = None) -> float:
    """Assembling and publishing the cut when `changed_frames` of it (all when None) show media
    the last version did not, and its sound, mixed whole for every version."""
    frames = plan.frames if changed_frames is None else min(changed_frames, plan.frames)
    megapixels = plan.width * plan.height / 1e6
    picture = ASSEMBLY_FIXED_SECONDS + frames * megapixels * ASSEMBLY_SECONDS_PER_MEGAPIXEL_FRAME
    sounding = sum(1 for shot in plan.shots if shot.audio or (
        shot.sound_source == "generated" and (shot.selected_take.final_task.dialogue
                                              or shot.selected_take.final_task.sound)))
    if not sounding and not (plan.audio and plan.ducking):
        return picture
    return (picture + SOUND_FIXED_SECONDS + SOUND_SECONDS_PER_SHOT * sounding
            + SOUND_SECONDS_PER_CUT_SECOND * float(plan.frames / plan.fps_fraction))


def _gang_sizes(tasks: list[ShotTask], gpus: int) -> dict[str, int]:
    from previz.plan.gangs import Malleable, allot

    sizes = {t.key: t.gpus for t in tasks}
    if any(len(t.gang_sizes()) > 1 for t in tasks):
        sizes.update(allot((Malleable(t.key, t.gang_sizes(),
                                      tuple(t.seconds_on(n) for n in t.gang_sizes()))
                            for t in tasks if t.gpus), gpus, largest_node=gpus))
    return sizes


def chain_seconds(plan: RenderPlan, seconds: Mapping[str, float]) -> float:
    """The longest run of tasks that wait for one another, each taking seconds[task key] (tasks
    not in `seconds` are done: they take nothing)."""
    final_of_take = {take.key: take.tasks[-1].key for take in plan.takes()}
    finish: dict[str, float] = {}
    for task in plan.tasks():  # dependencies come first
        before = task.depends_on
        before = final_of_take.get(before, before) if before else None
        own = seconds.get(task.key, 0.0)
        finish[task.key] = own + (finish.get(before, 0.0) if before else 0.0)
    return max(finish.values(), default=0.0)


def format_seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
