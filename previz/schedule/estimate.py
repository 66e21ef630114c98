"""How long a job's render will take, and whether it fits before its deadline.

The work comes from the plan's cost model (GPU-seconds per task, from the catalog). Where this
cluster has rendered a model before, its ledger's measured speed replaces the catalog's guess:
each task of that model is charged its generated frames times the model's measured GPU-seconds
per frame (successful attempts, load time included, over the last `LEDGER_DAYS` days). That
assumes the job renders at the steps and sizes it rendered before, which a recurring job does.

A job renders its storyboards one after another, each as fast as the cluster allows:

    storyboard wall time = max(work / GPUs, longest chain of dependent tasks) + fixed costs
    job wall time        = sum over its storyboards
    finish               = fire time + job wall time

The fixed costs are the plan forecast's (previz.plan.forecast): preparation, connecting to the
cluster, workers starting and loading their models, assembling the cut. Work counts every task (CPU tasks such as drafts are tiny and counted as if on a GPU lane, which
errs late); takes already in the store are counted too, so this is the worst case, a full render.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from previz.plan.forecast import chain_seconds, forecast

__all__ = [
    "LEDGER_DAYS",
    "ModelSpeed",
    "PlanWork",
    "JobEstimate",
    "FireForecast",
    "measured_speeds",
    "speeds_from_store",
    "plan_work",
    "estimate_plans",
    "forecast_fires",
]

LEDGER_DAYS = 30


@dataclass(frozen=True)
class ModelSpeed:
    """This cluster's measured speed for one model (from the ledger)."""

    model: str
    seconds_per_frame: float  # GPU-seconds per generated frame
    attempts: int
    frames: int


@dataclass(frozen=True)
class PlanWork:
    """One storyboard's work, with and without the measured speeds."""

    storyboard: str
    project: str
    sequence: str
    tasks: int
    catalog_seconds: float  # the plan's own estimate (GPU- and CPU-seconds)
    seconds: float  # corrected by measured speeds
    gpu_seconds: float  # of which on GPUs
    chain_seconds: float  # the longest chain of dependent tasks, corrected
    corrected_models: tuple[str, ...] = ()
    fixed_seconds: float = 0.0  # connecting, loading models, assembling: whatever the GPUs

    def wall_seconds(self, gpus: int) -> float:
        return max(self.seconds / gpus, self.chain_seconds) + self.fixed_seconds


@dataclass(frozen=True)
class JobEstimate:
    gpus: int
    plans: tuple[PlanWork, ...]
    speeds: Mapping[str, ModelSpeed] = field(default_factory=dict)
    ledger_note: str | None = None

    @property
    def catalog_seconds(self) -> float:
        return sum(p.catalog_seconds for p in self.plans)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.plans)

    @property
    def gpu_hours(self) -> float:
        return sum(p.gpu_seconds for p in self.plans) / 3600

    @property
    def wall_seconds(self) -> float:
        return sum(p.wall_seconds(self.gpus) for p in self.plans)

    def gpus_to_fit(self, window_seconds: float) -> int | None:
        """The fewest GPUs that finish within `window_seconds`; None if no count can."""
        if window_seconds <= 0 or sum(p.chain_seconds + p.fixed_seconds
                                      for p in self.plans) > window_seconds:
            return None
        low, high = 1, max(1, math.ceil(self.seconds / max(window_seconds, 1e-9))) * 4 + 1
        if _wall(self.plans, high) > window_seconds:
            return None
        while low < high:
            middle = (low + high) // 2
            if _wall(self.plans, middle) <= window_seconds:
                high = middle
            else:
                low = middle + 1
        return low


@dataclass(frozen=True)
class FireForecast:
    fire: datetime
    deadline: datetime
    finish: datetime

    @property
    def fits(self) -> bool:
        return self.margin_seconds >= 0

    @property
    def margin_seconds(self) -> float:
        """Seconds to spare (negative: how late)."""
        return _between(self.finish, self.deadline)

    @property
    def window_seconds(self) -> float:
        """Seconds from the fire time to the deadline (real seconds, DST included)."""
        return _between(self.fire, self.deadline)


def measured_speeds(table: Any) -> dict[str, ModelSpeed]:
    """Per model: GPU-seconds per generated frame over the ledger's successful attempts."""
    totals: dict[str, list[float]] = {}
    rows = table.select(["model", "frames", "gpu_seconds", "outcome"]).to_pylist()
    for row in rows:
        if row["outcome"] != "ok" or not row["frames"] or row["gpu_seconds"] <= 0:
            continue
        entry = totals.setdefault(row["model"], [0.0, 0, 0])
        entry[0] += row["gpu_seconds"]
        entry[1] += row["frames"]
        entry[2] += 1
    return {model: ModelSpeed(model, seconds / frames, int(count), int(frames))
            for model, (seconds, frames, count) in sorted(totals.items())}


def speeds_from_store(uri: str, now: datetime | None = None,
                      days: int = LEDGER_DAYS) -> tuple[dict[str, ModelSpeed], str | None]:
    """Measured speeds from the store's ledger, and a note when there are none to be had.

    An unreachable store is not an error here: the estimate falls back to the catalog."""
    now = now or datetime.now(timezone.utc)
    try:
        from previz.store import open_store
        from previz.store.ledger import read_ledger

        table = read_ledger(open_store(uri), since=now - timedelta(days=days))
    except Exception as error:  # noqa: BLE001 - any store failure means "no measurements"
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return {}, f"ledger not read ({first}); using the catalog's speeds"
    speeds = measured_speeds(table)
    if not speeds:
        return {}, f"no renders in the ledger in the last {days} days; using the catalog's speeds"
    return speeds, None


def plan_work(plan: Any, speeds: Mapping[str, ModelSpeed] | None = None) -> PlanWork:
    """The work of one render plan, each task charged at its model's measured speed if known."""
    speeds = speeds or {}
    tasks = plan.tasks()
    cost: dict[str, float] = {}
    corrected: set[str] = set()
    for task in tasks:
        speed = speeds.get(task.model)
        if speed is not None:
            cost[task.key] = task.num_frames * speed.seconds_per_frame
            corrected.add(task.model)
        else:
            cost[task.key] = float(task.estimate_seconds)
    return PlanWork(
        storyboard=str(plan.storyboard),
        project=plan.project,
        sequence=plan.sequence,
        tasks=len(tasks),
        catalog_seconds=sum(float(t.estimate_seconds) for t in tasks),
        seconds=sum(cost.values()),
        gpu_seconds=sum(cost[t.key] for t in tasks if t.gpus > 0),
        chain_seconds=chain_seconds(plan, {t.key: cost[t.key] / t.speedup_on(t.gpus)
                                           for t in tasks}),
        corrected_models=tuple(sorted(corrected)),
        fixed_seconds=forecast(plan, lanes=1, embedded=False).fixed_seconds,
    )


def estimate_plans(plans: Iterable[Any], gpus: int,
                   speeds: Mapping[str, ModelSpeed] | None = None,
                   ledger_note: str | None = None) -> JobEstimate:
    if gpus < 1:
        raise ValueError(f"--gpus {gpus}: a render needs at least one GPU lane — pass 1 or more")
    speeds = dict(speeds or {})
    works = tuple(plan_work(plan, speeds) for plan in plans)
    used = {m for w in works for m in w.corrected_models}
    return JobEstimate(gpus=gpus, plans=works,
                       speeds={m: s for m, s in speeds.items() if m in used},
                       ledger_note=ledger_note)


def forecast_fires(job: Any, estimate: JobEstimate, after: datetime,
                   count: int) -> list[FireForecast]:
    """Each of the next `count` fire times with its deadline and estimated finish."""
    wall = timedelta(seconds=estimate.wall_seconds)
    forecasts = []
    for fire in job.fires_after(after, count):
        # Arithmetic in UTC: adding to a local time would ignore a DST change in between.
        finish = (fire.astimezone(timezone.utc) + wall).astimezone(job.tz)
        forecasts.append(FireForecast(fire=fire, deadline=job.deadline_for(fire), finish=finish))
    return forecasts


def _between(start: datetime, end: datetime) -> float:
    # Aware datetimes sharing a tzinfo subtract as wall clocks; in UTC they subtract as instants.
    return (end.astimezone(timezone.utc) - start.astimezone(timezone.utc)).total_seconds()


def _wall(plans: tuple[PlanWork, ...], gpus: int) -> float:
    return sum(p.wall_seconds(gpus) for p in plans)
