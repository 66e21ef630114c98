"""Human-readable views of a plan for the terminal."""

from __future__ import annotations

from fractions import Fraction

from previz.plan.forecast import Forecast, format_seconds
from previz.plan.types import RenderPlan
from previz.storyboard.timing import timecode

__all__ = ["print_plan", "format_duration", "format_gpu_time", "format_plan_estimate"]


def format_duration(frames: int, fps: Fraction) -> str:
    seconds = frames / fps
    return f"{int(seconds // 60)}:{float(seconds % 60):05.2f}"


def format_gpu_time(seconds: float, unit: str = "GPU") -> str:
    if seconds < 120:
        return f"{seconds:.0f} {unit}-s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} {unit}-min"
    return f"{seconds / 3600:.1f} {unit}-h"


def _unit(gpus: int) -> str:
    return "GPU" if gpus else "CPU"


def format_plan_estimate(plan: RenderPlan) -> str:
    """The whole plan's work, in GPU time when any of it needs a GPU, else CPU time."""
    return format_gpu_time(plan.estimate_seconds, _unit(max(t.gpus for t in plan.tasks())))


def gang_times(tasks) -> str:
    """A take's time by the clock on each gang size it may run on: `1: 9.8 min · 4: 2.9 min`."""
    if not tasks[0].gpus:
        return "CPU"
    return " · ".join(f"{n}: {format_seconds(sum(t.seconds_on(n) for t in tasks))}"
                      for n in tasks[0].gang_sizes())


def print_plan(plan: RenderPlan, forecast: Forecast | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    fps = plan.fps_fraction
    start = 3600 * round(fps)  # record timecode starts at 01:00:00:00
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and pipes: one row per shot, nothing cut off
    table = Table(
        title=f"{plan.project} {plan.sequence} — {len(plan.shots)} shots, "
        f"{plan.frames} frames ({format_duration(plan.frames, fps)}) at {plan.fps} fps, "
        f"{plan.width}x{plan.height}",
        title_justify="left",
    )
    fades_out = any(shot.fade_out for shot in plan.shots)
    # Shots on several GPUs (or that the render may widen): each size's time by the clock.
    split = any(t.gang_sizes() != (1,) for t in plan.tasks() if t.gpus)
    for column in ("shot", "frames", "record in", "record out", "in", *(("out",) if fades_out
                                                                       else ()),
                   "model", "size", "model frames", "takes", "est.",
                   *(("GPUs: time",) if split else ())):
        table.add_column(column, no_wrap=True,
                         justify="right" if column in ("frames", "takes", "est.") else "left")
    for shot in plan.shots:
        take = shot.selected_take
        task = take.tasks[0]
        transition = "" if shot.transition.type == "cut" else (
            f"{shot.transition.type} {shot.transition.frames}f")
        segments = "+".join(str(t.num_frames) for t in take.tasks)
        out = [f"fade_to_black {shot.fade_out}f" if shot.fade_out else ""] if fades_out else []
        table.add_row(
            shot.id, str(shot.frames), timecode(start + shot.record_in, fps),
            timecode(start + shot.record_out, fps), transition, *out, shot.model,
            f"{task.width}x{task.height}", f"{segments} @ {task.fps:g}",
            f"{shot.select}/{len(shot.takes)}",
            format_gpu_time(shot.estimate_seconds, _unit(task.gpus)),
            *((gang_times(take.tasks),) if split else ()),
        )
    console.print(table)
    take_frames = sum(shot.frames * len(shot.takes) for shot in plan.shots)
    # In the units a render's progress counts: calls, and each take's frames at the cut's rate.
    console.print(f"{len(plan.tasks())} generator calls ({take_frames} frames of takes), "
                  f"estimated {format_plan_estimate(plan)}")
    if forecast is not None:
        console.print(f"a render with nothing in the store: {forecast.describe()}",
                      highlight=False, soft_wrap=True)
    for warning in plan.warnings:
        console.print(f"[yellow]note:[/yellow] {warning}", highlight=False)
