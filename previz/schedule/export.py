"""`previz jobs export`: a job's schedule in the scheduler a studio already runs.

- crontab: one line (with CRON_TZ) that calls `previz jobs run`;
- systemd: a oneshot service that calls `previz jobs run` and a timer that starts it;
- kubernetes: a KubeRay `RayCronJob` whose RayJobs render on a cluster made for the night;
- kubernetes-cronjob: a plain Kubernetes `CronJob` that calls `previz jobs run` against a
  long-running cluster, for clusters without the RayCronJob feature.

Every route but RayCronJob goes through `previz jobs run`, so each slot renders once however
often it is triggered.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from previz.schedule.cron import CronSchedule
from previz.schedule.kube import (
    DEFAULT_IMAGE,
    NAMESPACE,
    PROJECT_MOUNT,
    TOKEN_SECRET,
    WEBHOOK_SECRET,
    ray_cluster_spec,
)
from previz.schedule.notify import ENV_JOB, ENV_WEBHOOKS
from previz.schedule.run import render_entrypoint, storyboard_root
from previz.schedule.spec import Job

__all__ = [
    "TARGETS",
    "export_job",
    "crontab_entry",
    "systemd_units",
    "systemd_calendars",
    "raycronjob_manifest",
    "cronjob_manifest",
    "dst_gaps",
    "project_root",
]

TARGETS = ("crontab", "systemd", "kubernetes", "kubernetes-cronjob")
# A RayCronJob slot's cluster is deleted this long after its render ends (time to read its
# logs); a slot still running an hour past its deadline is stopped by KubeRay.
CLUSTER_TTL_SECONDS = 600
OVERRUN_SECONDS = 3600
_REFERENCE_WEEK = datetime(2026, 1, 5, tzinfo=timezone.utc)
_DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def export_job(job: Job, to: str, **options: Any) -> dict[str, str]:
    """File name -> text of what `to` needs to run `job` on schedule."""
    if to == "crontab":
        return {f"previz-{job.name}.crontab": crontab_entry(job, **options)}
    if to == "systemd":
        return systemd_units(job, **options)
    if to == "kubernetes":
        return {f"previz-{job.name}.raycronjob.yaml": _yaml(raycronjob_manifest(job, **options))}
    if to == "kubernetes-cronjob":
        return {f"previz-{job.name}.cronjob.yaml": _yaml(cronjob_manifest(job, **options))}
    raise ValueError(f"--to {to!r}: use one of {', '.join(TARGETS)}")


# -- crontab -----------------------------------------------------------------------------------
def crontab_entry(job: Job, *, python: str | None = None,
                  environment_file: str | None = None) -> str:
    """A crontab line that runs `previz jobs run` at each slot, in the job's time zone.

    The token and webhook URLs come from an env file only its owner reads (the line stops when
    it is missing or unreadable, before anything runs); output goes to syslog (`logger`), which
    the system rotates, rather than a file that grows every night."""
    command = _run_command(job, python)
    environment_file = environment_file or f"$HOME/.config/previz/{job.name}.env"
    tag = f"previz-{job.name}"
    missing = (f"echo '{environment_file}: missing or unreadable — create it (mode 0600) with "
               f"RAY_AUTH_TOKEN=...'")
    line = (f"{{ [ -r {environment_file} ] || {{ {missing}; exit 78; }}; set -a; "
            f". {environment_file}; set +a; {command}; }} 2>&1 | logger -t {tag}; "
            f"exit ${{PIPESTATUS[0]}}")
    return "\n".join([
        f"# previz job {job.name}: {job.spec.schedule.cron} ({job.timezone}), deadline "
        f"{job.deadline.text}",
        "# CRON_TZ makes the schedule local to the job's zone in cronie (RHEL, Fedora, Arch);",
        "# it applies to every line below it. Debian's cron ignores it: use the systemd timer.",
        f"# Secrets (RAY_AUTH_TOKEN=..., webhook URLs) go in {environment_file}, mode 0600;",
        f"# the log goes to syslog: journalctl -t {tag} (or grep {tag} /var/log/syslog).",
        "SHELL=/bin/bash",
        f"CRON_TZ={job.timezone}",
        # '%' ends a crontab command; escape it.
        f"{job.cron.canonical()} {line.replace('%', chr(92) + '%')}",
        "",
    ])


# -- systemd -----------------------------------------------------------------------------------
def systemd_units(job: Job, *, python: str | None = None,
                  environment_file: str | None = None) -> dict[str, str]:
    """`previz-<job>.service` (oneshot `previz jobs run`) and `previz-<job>.timer`."""
    unit = f"previz-{job.name}"
    environment_file = environment_file or f"/etc/previz/{job.name}.env"
    calendars = systemd_calendars(job.cron, job.timezone)
    notes = [f"# {line}" for line in _systemd_gap_notes(job)]
    service = "\n".join([
        f"# {unit}.service: submit job {job.name} to its Ray cluster (previz jobs run).",
        "# Install both files in /etc/systemd/system, then:",
        f"#   systemctl daemon-reload && systemctl enable --now {unit}.timer",
        "[Unit]",
        f"Description=previz job {job.name}: submit the scheduled render",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        "# A user of its own (useradd --system previz), never root.",
        "User=previz",
        "Group=previz",
        f"WorkingDirectory={_systemd_quote(str(job.path.parent))}",
        "# RAY_AUTH_TOKEN and the variables url_env: webhooks name live here, not in this unit:",
        "# root-only (0600 root:root; systemd reads it before it becomes User=). Required: a",
        "# missing file fails the run at once, in the journal, instead of submitting without a",
        "# token.",
        f"EnvironmentFile={environment_file}",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        f"ExecStart={_run_command(job, python, quote=_systemd_quote)}",
        "",
    ])
    timer = "\n".join([
        f"# {unit}.timer: {job.spec.schedule.cron} in {job.timezone}, deadline "
        f"{job.deadline.text}.",
        "# Persistent=true starts a run missed while the machine was off; it maps to the latest",
        "# slot, and a slot already submitted is not submitted again.",
        *notes,
        "[Unit]",
        f"Description=previz job {job.name} schedule",
        "",
        "[Timer]",
        *[f"OnCalendar={calendar}" for calendar in calendars],
        "Persistent=true",
        "AccuracySec=1s",
        f"Unit={unit}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return {f"{unit}.service": service, f"{unit}.timer": timer}


def systemd_calendars(cron: CronSchedule, timezone_name: str) -> list[str]:
    """OnCalendar= expressions firing when `cron` does (two when both day fields are set:
    cron ORs them, systemd ANDs the parts of one expression)."""
    def values(items: Any, full: range) -> str:
        chosen = sorted(set(items))
        return "*" if chosen == list(full) else ",".join(f"{v:02d}" for v in chosen)

    months = values(cron.months, range(1, 13))
    hours = values(cron.hours, range(24))
    minutes = values(cron.minutes, range(60))
    days = values(cron.days, range(1, 32))
    weekdays = sorted(cron.weekdays)
    week = "" if weekdays == list(range(7)) else ",".join(_DAY_NAMES[d] for d in weekdays) + " "
    clock = f"{hours}:{minutes}:00 {timezone_name}"
    if cron.days_star or cron.weekdays_star:
        return [f"{week}*-{months}-{days} {clock}"]
    return [f"*-{months}-{days} {clock}", f"{week}*-{months}-* {clock}"]


def dst_gaps(tz: ZoneInfo, start: datetime, days: int = 366) -> list[tuple[datetime, datetime]]:
    """The local wall-clock intervals [from, to) the clocks skip in the next `days`."""
    gaps = []
    moment = start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    offset = moment.astimezone(tz).utcoffset()
    for _ in range(days * 24 * 4):
        later = moment + timedelta(minutes=15)
        new = later.astimezone(tz).utcoffset()
        if new is not None and offset is not None and new > offset:
            after = later.astimezone(tz).replace(tzinfo=None)
            gaps.append((after - (new - offset), after))
        moment, offset = later, new
    return gaps


def _systemd_gap_notes(job: Job) -> list[str]:
    notes = []
    for start, end in dst_gaps(job.tz, datetime.now(timezone.utc)):
        probe = start
        while probe < end:
            if (job.cron.matches_day(probe.date()) and probe.hour in job.cron.hours
                    and probe.minute in job.cron.minutes):
                notes.append(f"Note: on {start:%Y-%m-%d} the clocks skip {start:%H:%M}-"
                             f"{end:%H:%M} in {job.timezone}; systemd skips this job's "
                             f"{probe:%H:%M} that night (previz and cron fire it at "
                             f"{end:%H:%M}). Schedule outside the gap if that night matters.")
                break
            probe += timedelta(minutes=1)
    return notes


# -- Kubernetes --------------------------------------------------------------------------------
def raycronjob_manifest(job: Job, *, image: str = DEFAULT_IMAGE, namespace: str = NAMESPACE,
                        root: Path | None = None, mount: str = PROJECT_MOUNT,
                        **_: Any) -> dict[str, Any]:
    """A KubeRay RayCronJob (ray.io/v1, KubeRay 1.7 with the RayCronJob feature gate: `timeZone`
    first ships in 1.7.0): each slot makes a RayJob that brings up a cluster, renders the
    storyboards in turn against the job's deadline, and shuts the cluster down.

    The deadline is the job's local time as written, with its zone ("07:00 Europe/London"):
    `previz render` resolves it to the slot's own deadline. KubeRay stops a slot that outlives its longest window
    from fire time to deadline by more than an hour (`activeDeadlineSeconds`: a hung render
    does not run into the next slot), and deletes its cluster ten minutes after it ends."""
    root = root or project_root(job)
    folder = _in_mount(storyboard_root(job), root, mount)
    env = {**job.spec.environment, ENV_JOB: job.name}
    if job.webhooks:
        env[ENV_WEBHOOKS] = json.dumps([w.to_json() for w in job.webhooks])
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCronJob",
        "metadata": _metadata(job, namespace),
        "spec": {
            "schedule": job.cron.canonical(),
            "timeZone": job.timezone,
            "jobTemplate": {
                "entrypoint": f"cd {shlex.quote(folder)} || exit 1; "
                              + render_entrypoint(job, f"{job.deadline.text} {job.timezone}"),
                "metadata": {"previz": "1", "job": job.name, "priority": job.spec.priority,
                             "deadline_local": f"{job.deadline.text} {job.timezone}",
                             "on_deadline": job.spec.on_deadline},
                "runtimeEnvYAML": yaml.safe_dump({"env_vars": env}, sort_keys=False,
                                                  width=1000),
                "shutdownAfterJobFinishes": True,
                "ttlSecondsAfterFinished": CLUSTER_TTL_SECONDS,
                "activeDeadlineSeconds": _longest_window(job) + OVERRUN_SECONDS,
                "rayClusterSpec": ray_cluster_spec(
                    image, priority_class=f"previz-{job.spec.priority}"),
            },
        },
    }


def _longest_window(job: Job) -> int:
    """The most seconds a slot has between its fire time and its deadline: over 64 slots from a
    fixed week (so the export is the same whenever it is made), plus an hour for a night the
    clocks go back."""
    fires = job.fires_after(_REFERENCE_WEEK, 64)
    longest = max(int((job.deadline_for(fire) - fire).total_seconds()) for fire in fires)
    return longest + 3600


def cronjob_manifest(job: Job, *, image: str = DEFAULT_IMAGE, namespace: str = NAMESPACE,
                     root: Path | None = None, mount: str = PROJECT_MOUNT,
                     address: str | None = None, **_: Any) -> dict[str, Any]:
    """A plain Kubernetes CronJob (batch/v1, time zones since Kubernetes 1.27) whose pod runs
    `previz jobs run` against the job's long-running Ray cluster."""
    root = root or project_root(job)
    command = ["previz", "jobs", "run", _in_mount(job.path, root, mount)]
    if address:
        command += ["--address", address]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(job, namespace),
        "spec": {
            "schedule": job.cron.canonical(),
            "timeZone": job.timezone,
            "concurrencyPolicy": "Forbid",
            # A pod that starts late still finds its slot: `previz jobs run` takes the latest.
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {"spec": {
                # Retrying is safe: a slot already submitted is reported, not resubmitted.
                "backoffLimit": 3,
                "activeDeadlineSeconds": 1800,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "previz",
                                            "previz.dev/job": job.name}},
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": "previz",
                        "containers": [{
                            "name": "submit",
                            "image": image,
                            "command": command,
                            "env": [{"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {
                                "name": TOKEN_SECRET, "key": "auth_token"}}}],
                            "envFrom": [{"secretRef": {"name": WEBHOOK_SECRET,
                                                       "optional": True}}],
                            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                          "limits": {"cpu": "1", "memory": "1Gi"}},
                            "securityContext": {"allowPrivilegeEscalation": False,
                                                "runAsNonRoot": True},
                            "volumeMounts": [{"name": "project", "mountPath": mount,
                                              "readOnly": True}],
                        }],
                        "volumes": [{"name": "project", "persistentVolumeClaim": {
                            "claimName": "previz-project", "readOnly": True}}],
                    },
                },
            }},
        },
    }


def project_root(job: Job) -> Path:
    """The folder holding the job file and its storyboards: what the project volume holds."""
    import os

    folders = [str(job.path.parent), *(str(p.parent) for p in job.storyboards)]
    return Path(os.path.commonpath(folders))


# -- helpers -----------------------------------------------------------------------------------
def _run_command(job: Job, python: str | None, quote: Any = shlex.quote) -> str:
    python = python or sys.executable
    return " ".join(quote(part) for part in (python, "-m", "previz", "jobs", "run",
                                             str(job.path)))


def _systemd_quote(text: str) -> str:
    if all(c.isalnum() or c in "/._-:+=@" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _in_mount(path: Path, root: Path, mount: str) -> str:
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is outside the project folder {root} — pass --project-root "
                         "a folder that holds the job file and its storyboards") from None
    return (Path(mount) / relative).as_posix()


def _metadata(job: Job, namespace: str) -> dict[str, Any]:
    return {
        "name": f"previz-{job.name}",
        "namespace": namespace,
        "labels": {"app.kubernetes.io/name": "previz", "previz.dev/job": job.name,
                   "previz.dev/priority": job.spec.priority},
        "annotations": {"previz.dev/deadline": f"{job.deadline.text} {job.timezone}",
                        "previz.dev/on-deadline": job.spec.on_deadline,
                        "previz.dev/schedule": job.spec.schedule.cron},
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # plain manifests: no &anchors or *aliases
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None  # embedded documents as readable blocks
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)
