"""`previz jobs run`: submit a job's render for one schedule slot through the Ray Jobs API.

The submission id is the job's name plus the slot's UTC time, so however many times cron,
systemd, Kubernetes or a person triggers one slot, the cluster renders it once; a second trigger
finds the first submission and reports it. No scheduler daemon of our own: whatever fires the
command at the slot's time is the scheduler.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from previz.errors import InvalidInput, PrevizError
from previz.schedule.notify import (
    ENV_DEADLINE,
    ENV_JOB,
    ENV_SLOT,
    ENV_SUBMISSION,
    ENV_WEBHOOKS,
    RENDER_STARTED,
    Delivery,
    notify,
    render_summary,
)
from previz.schedule.spec import Job

__all__ = [
    "JobRun",
    "RenderStart",
    "run_job",
    "wait_for_render",
    "slot_for",
    "submission_id_for",
    "render_entrypoint",
    "job_environment",
    "job_metadata",
    "parse_time",
    "plans_for",
    "storyboard_root",
]

_EXCLUDES = [".git", ".venv", "venv", "__pycache__", "renders", "*.mp4", "*.mov"]
# How long `previz jobs run` waits for the render to start: past Ray's own limit for a job to
# start (RAY_JOB_START_TIMEOUT_SECONDS, 15 minutes), so a job the cluster never starts has
# failed, and been notified, by the time the trigger gives up.
START_TIMEOUT_S = 960.0
_ENDED = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class JobRun:
    """What `run_job` did: submitted a new Ray job, or found the slot's existing one."""

    submission_id: str
    status: str
    existing: bool
    slot: datetime
    deadline: datetime
    address: str
    late: bool = False  # submitted after the slot's deadline: rendered with no deadline


def run_job(job: Job, *, slot: datetime | None = None, address: str | None = None,
            now: datetime | None = None, notify_options: dict[str, Any] | None = None) -> JobRun:
    """Submit `job`'s render for one slot, once.

    1. pick the slot: the one given, or the latest fire time at or before now;
    2. load and plan every storyboard (one broken since the last run fails here, located);
    3. connect to the cluster's Jobs API;
    4. if the slot was already submitted, report that job and stop;
    5. submit: one Ray job rendering the storyboards in turn, carrying the slot, the deadline
       and the webhooks to its render. A slot run after its deadline (a missed night, run by
       hand in the morning) renders at full quality with no deadline: keeping a deadline that
       has passed would publish nothing but placeholders.
    A failure in steps 2-5 notifies the job's webhooks (event `failed`) and is raised again, so
    the scheduler that fired the command records a non-zero exit; the deliveries ride on the
    exception as `notified`.
    """
    chosen = slot_for(job, slot=slot, now=now)
    deadline = job.deadline_for(chosen)
    job_id = submission_id_for(job, chosen)
    address = address or job.spec.cluster
    late = deadline <= (now or datetime.now(timezone.utc))
    try:
        plans = plans_for(job)
        client = _client(address)
        existing = _existing_status(client, job_id)
        if existing is not None:
            return JobRun(job_id, existing, True, chosen, deadline, address)
        root = storyboard_root(job)
        try:
            client.submit_job(
                entrypoint=render_entrypoint(job, None if late else deadline, root),
                submission_id=job_id,
                runtime_env={"working_dir": str(root), "excludes": _EXCLUDES,
                             "env_vars": job_environment(job, chosen, deadline, job_id)},
                metadata=job_metadata(job, chosen, deadline, plans),
            )
        except Exception as error:  # noqa: BLE001 - a second trigger may have won the race
            status = _existing_status(client, job_id)
            if status is not None:
                return JobRun(job_id, status, True, chosen, deadline, address)
            raise PrevizError(f"{job.source}: the cluster at {address} refused job {job_id} "
                              f"({_first_line(error)}) — check the cluster's dashboard and "
                              "logs, then run `previz jobs run` again") from None
    except Exception as error:
        deliveries = _notify_failure(job, chosen, deadline, job_id, f"not submitted: {error}",
                                     notify_options)
        error.notified = tuple(deliveries)  # type: ignore[attr-defined]
        raise
    return JobRun(job_id, "PENDING", False, chosen, deadline, address, late)


@dataclass(frozen=True)
class RenderStart:
    """How the wait for a submitted job's render ended."""

    status: str  # the Ray job's status then
    started: bool  # the render announced itself: it notifies the webhooks from here on
    error: str | None = None  # why the job ended, or was not started, without its render
    notified: tuple[Delivery, ...] = ()


def wait_for_render(job: Job, run: JobRun, *, timeout: float = START_TIMEOUT_S,
                    poll: float = 1.0,
                    notify_options: dict[str, Any] | None = None) -> RenderStart:
    """Follow a just-submitted job until its render has started and owns notifying.

    A job can end before `previz render` runs — its runtime environment cannot be set up, the
    cluster's image lacks previz, the head never schedules it — and then nothing of ours runs
    on the cluster to tell anyone. So the trigger watches the start:
    1. poll the job's status, and once it runs, its log for the render's first line: seen, the
       render has taken over (done);
    2. the job ended without that line: notify `failed` with Ray's reason;
    3. `timeout` passed with no render: notify `failed` (not started).
    """
    import time

    client = _client(run.address)
    limit = time.monotonic() + timeout
    while True:
        try:
            info = client.get_job_info(run.submission_id)
            status = str(getattr(info.status, "value", info.status))
            logs = client.get_job_logs(run.submission_id) if status != "PENDING" else ""
        except Exception as error:  # noqa: BLE001 - connection failures come in many types
            reason = (f"lost the cluster at {run.address} while waiting for the render to start "
                      f"({_first_line(error)})")
            return _not_started(job, run, "UNKNOWN", reason, notify_options)
        if RENDER_STARTED in logs or status == "SUCCEEDED":
            return RenderStart(status, True)
        if status in _ENDED:
            reason = (f"the job ended {status} before its render started: "
                      f"{_ray_reason(info, logs)}")
            return _not_started(job, run, status, reason, notify_options)
        if time.monotonic() > limit:
            reason = (f"the render had not started {timeout:.0f} s after submission (the job is "
                      f"{status})")
            return _not_started(job, run, status, reason, notify_options)
        time.sleep(poll)


def _not_started(job: Job, run: JobRun, status: str, reason: str,
                 options: dict[str, Any] | None) -> RenderStart:
    deliveries = _notify_failure(job, run.slot, run.deadline, run.submission_id, reason, options)
    return RenderStart(status, False, reason, tuple(deliveries))


def _ray_reason(info: Any, logs: str) -> str:
    """Ray's message for a job that ended, and the log's last line (`previz: not found`)."""
    message = (getattr(info, "message", None) or "").strip().splitlines()
    reason = message[0] if message else "no reason given"
    last = [line.strip() for line in logs.strip().splitlines() if line.strip()]
    if last and last[-1] not in reason:
        reason += f"; its log ends: {last[-1][:300]}"
    return reason


def slot_for(job: Job, *, slot: datetime | None = None, now: datetime | None = None) -> datetime:
    """The slot a run is for: `slot` if it is one of the schedule's fire times, else the latest
    fire time at or before `now`. Raises InvalidInput for a time the schedule never fires at."""
    if slot is None:
        return job.cron.previous(now or datetime.now(timezone.utc), job.tz)
    if not job.cron.is_fire_time(slot, job.tz):
        before = job.cron.previous(slot, job.tz)
        after = job.cron.next_after(slot, job.tz)
        raise InvalidInput(
            f"--slot {_show(slot.astimezone(job.tz))}: {job.spec.schedule.cron!r} "
            f"({job.timezone}) does not fire then — the nearest slots are {_show(before)} and "
            f"{_show(after)}; pass one of them (ISO 8601, such as {before:%Y-%m-%dT%H:%M})")
    return slot.astimezone(job.tz)


def submission_id_for(job: Job, slot: datetime) -> str:
    """previz-<job>-<slot in UTC>: the same for every trigger of one slot."""
    utc = slot.astimezone(timezone.utc)
    return f"previz-{job.name}-{utc:%Y%m%dt%H%M}z"


def parse_time(text: str, tz: ZoneInfo, option: str = "--slot") -> datetime:
    """ISO 8601 (`2025-01-13T19:30`, with or without an offset) -> aware datetime.

    A time without an offset is local to `tz`; one the clocks skip or repeat there is refused
    with the offsets to choose from."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} {text!r}: not a time — write ISO 8601 such as "
                           "2025-01-13T19:30 (local to the job's time zone) or "
                           "2025-01-13T19:30+00:00") from None
    if moment.tzinfo is not None:
        return moment
    first, second = moment.replace(tzinfo=tz, fold=0), moment.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        exists = first.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == moment
        if not exists:
            raise InvalidInput(f"{option} {text!r}: {moment:%H:%M} does not exist in {tz.key} "
                               "that day (the clocks go forward) — pass the time with an "
                               "offset, or the slot the schedule lists")
        stamp = f"{moment:%Y-%m-%dT%H:%M}"
        raise InvalidInput(f"{option} {text!r}: {moment:%H:%M} happens twice in {tz.key} that "
                           f"day (the clocks go back) — add the offset: {stamp}{_offset(first)} "
                           f"(the first) or {stamp}{_offset(second)} (the second)")
    return first


def storyboard_root(job: Job) -> Path:
    """The folder the render's working directory is made from: holds every storyboard."""
    return Path(os.path.commonpath([str(p.parent) for p in job.storyboards]))


def render_entrypoint(job: Job, deadline: datetime | str | None = None,
                      root: Path | None = None) -> str:
    """The shell command the Ray job runs: `previz render` for each storyboard in turn; the
    exit status is the last failure's, so a partial or failed render fails the job. `--deadline`
    is passed when there is one and the job keeps it (drafts or fewer steps), and `previz render`
    takes it: a moment, or the job's local deadline as written ("07:00", "Mon 07:00") for a
    schedule that runs without previz (it then resolves in the render's TZ)."""
    root = root or storyboard_root(job)
    commands = []
    for path in job.storyboards:
        command = ["previz", "render", path.relative_to(root).as_posix(),
                   "--store", job.spec.store, "--json"]
        if deadline and job.spec.on_deadline != "continue":
            command += ["--deadline", deadline if isinstance(deadline, str)
                        else deadline.isoformat(timespec="minutes")]
            if job.spec.on_deadline == "fewer-steps":
                command += ["--deadline-fallback", "fewer-steps"]
        commands.append(" ".join(shlex.quote(part) for part in command))
    if len(commands) == 1:
        return commands[0]
    return "rc=0; " + " ".join(f"{command} || rc=$?;" for command in commands) + " exit $rc"


def job_environment(job: Job, slot: datetime, deadline: datetime,
                    submission_id: str) -> dict[str, str]:
    """What the render needs to notify: the job, its slot, deadline and webhooks (URLs kept in
    `url_env` variables are read where the render runs, never copied here)."""
    import json

    env = {**job.spec.environment, ENV_JOB: job.name,
           ENV_SLOT: slot.astimezone(timezone.utc).isoformat(),
           ENV_DEADLINE: deadline.isoformat(), ENV_SUBMISSION: submission_id}
    if job.webhooks:
        env[ENV_WEBHOOKS] = json.dumps([w.to_json() for w in job.webhooks])
    return env


def job_metadata(job: Job, slot: datetime, deadline: datetime, plans: list[Any]) -> dict[str, str]:
    """Ray job metadata (strings only): `previz list` shows project and sequence from it."""
    return {
        "previz": "1",
        "job": job.name,
        "slot": slot.astimezone(timezone.utc).isoformat(),
        "deadline": deadline.isoformat(),
        "deadline_local": f"{job.deadline.text} {job.timezone}",
        "on_deadline": job.spec.on_deadline,
        "priority": job.spec.priority,
        "project": ",".join(dict.fromkeys(p.project for p in plans)),
        "sequence": ",".join(p.sequence for p in plans),
        "storyboard": ",".join(p.name for p in job.storyboards),
    }


# -- steps -------------------------------------------------------------------------------------
def plans_for(job: Job) -> list[Any]:
    """Load and plan every storyboard of `job`; InvalidInput with all their problems."""
    from previz.plan import plan_from_storyboard
    from previz.storyboard import load_storyboard

    plans, problems = [], []
    for path in job.storyboards:
        try:
            plans.append(plan_from_storyboard(load_storyboard(path)))
        except InvalidInput as error:
            problems += error.problems
    if problems:
        raise InvalidInput(problems)
    return plans


def _client(address: str):
    from previz.engine.jobs import job_client

    return job_client(address)


def _existing_status(client: Any, job_id: str) -> str | None:
    try:
        info = client.get_job_info(job_id)
    except RuntimeError:
        return None  # the Jobs API's answer for an unknown submission id
    except Exception as error:  # noqa: BLE001 - connection failures come in many types
        raise PrevizError(f"lost the cluster while looking for job {job_id} "
                          f"({_first_line(error)}) — check the cluster, then run again") from None
    return str(getattr(info.status, "value", info.status))


def _notify_failure(job: Job, slot: datetime, deadline: datetime, job_id: str,
                    reason: str, options: dict[str, Any] | None) -> list[Delivery]:
    if not job.webhooks:
        return []
    environ = {**os.environ, **job_environment(job, slot, deadline, job_id)}
    summary = render_summary("failed", error=reason, environ=environ)
    summary["storyboards"] = [str(p) for p in job.spec.storyboards]
    return notify(job.webhooks, summary, **(options or {}))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _show(moment: datetime) -> str:
    return f"{moment:%a %Y-%m-%d %H:%M} {moment.tzname()}"
