"""`previz jobs ...`: validate job specs, forecast the next runs, run a slot, export schedules.

`add_jobs_parser(commands)` registers the group on previz's argparse subcommands; each command's
`run(args) -> int` raises InvalidInput (exit 2) or PrevizError (exit 1) like every other command.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from previz.errors import EXIT_FAILURE, EXIT_INVALID, EXIT_OK, InvalidInput, PrevizError

__all__ = ["add_jobs_parser"]


def add_jobs_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `jobs` and its subcommands to `commands` (an argparse subparsers object)."""
    jobs = commands.add_parser(
        "jobs", help="scheduled renders: validate, forecast, run and export job specs",
        description="Scheduled renders. A job file names storyboards, a store, a cluster, a cron "
                    "schedule with its time zone, a deadline and webhooks; cron, systemd or "
                    "Kubernetes fires `previz jobs run` at each slot.")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="JOBS_COMMAND", required=True)

    validate = sub.add_parser("validate", help="check job files and the storyboards they name")
    validate.add_argument("paths", nargs="+", metavar="JOBS", help="job files or folders")
    validate.set_defaults(run=_validate)

    forecast = sub.add_parser(
        "next", help="next fire times, estimated GPU-hours and finish against the deadline")
    forecast.add_argument("job", metavar="JOB")
    forecast.add_argument("--gpus", type=int, default=None, metavar="N",
                          help="GPUs to plan for (default: the job's gpus:, else 1)")
    forecast.add_argument("--count", type=int, default=5, metavar="N",
                          help="how many fire times to show (default 5)")
    forecast.add_argument("--from", dest="start", default=None, metavar="TIME",
                          help="list fire times after this time (ISO 8601; default now)")
    forecast.add_argument("--json", action="store_true", help="print one JSON object")
    forecast.set_defaults(run=_next)

    run = sub.add_parser("run", help="submit the render for a schedule slot (once per slot)")
    run.add_argument("job", metavar="JOB")
    run.add_argument("--slot", default=None, metavar="TIME",
                     help="the slot to render (ISO 8601; default: the latest fire time)")
    run.add_argument("--address", default=None, metavar="URL",
                     help="the cluster's dashboard, overriding the job's cluster:")
    run.add_argument("--start-timeout", type=float, default=None, metavar="SECONDS",
                     help="wait this long for the render to start on the cluster (default 960: "
                          "past Ray's own 15 minutes); a job that ends or is still not started "
                          "by then is notified as failed and exits 1")
    run.add_argument("--no-wait", action="store_true",
                     help="return once submitted; a job that fails before its render starts "
                          "then notifies no one")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.set_defaults(run=_run)

    export = sub.add_parser("export", help="the job's schedule for crontab, systemd or "
                                           "Kubernetes")
    export.add_argument("job", metavar="JOB")
    export.add_argument("--to", required=True,
                        choices=("crontab", "systemd", "kubernetes", "kubernetes-cronjob"),
                        help="kubernetes: a KubeRay RayCronJob; kubernetes-cronjob: a plain "
                             "CronJob calling `previz jobs run`")
    export.add_argument("--out", default=None, metavar="DIR",
                        help="write the files into DIR instead of printing them")
    export.add_argument("--image", default=None, metavar="IMAGE",
                        help="Kubernetes: the previz worker image")
    export.add_argument("--namespace", default=None, metavar="NS", help="Kubernetes namespace")
    export.add_argument("--project-root", default=None, metavar="DIR",
                        help="Kubernetes: the folder the project volume holds (default: the "
                             "one holding the job file and its storyboards)")
    export.add_argument("--mount", default=None, metavar="PATH",
                        help="Kubernetes: where the project volume is mounted in pods")
    export.add_argument("--address", default=None, metavar="URL",
                        help="kubernetes-cronjob: the cluster's dashboard as pods reach it")
    export.set_defaults(run=_export)
    return jobs


# -- validate ----------------------------------------------------------------------------------
def _validate(args: argparse.Namespace) -> int:
    from previz.plan import plan_from_storyboard
    from previz.schedule.spec import load_job
    from previz.storyboard import load_storyboard
    from previz.storyboard.yaml_source import yaml_files

    files = yaml_files(args.paths)
    if not files:
        raise InvalidInput(f"{', '.join(args.paths)}: no job (.yaml) files found")
    failed = 0
    now = datetime.now(timezone.utc)
    for path in files:
        try:
            job = load_job(path)
            problems: list[Any] = []
            plans = []
            for storyboard in job.storyboards:
                try:
                    plans.append(plan_from_storyboard(load_storyboard(storyboard)))
                except InvalidInput as error:
                    problems += error.problems
            if problems:
                raise InvalidInput(problems)
        except InvalidInput as error:
            failed += 1
            print(error, file=sys.stderr)
            continue
        fire = job.fires_after(now, 1)[0]
        shots = sum(len(p.shots) for p in plans)
        print(f"ok  {path}  {job.name}: {len(plans)} storyboard{_s(len(plans))}, {shots} shots, "
              f"est. {sum(p.estimate_seconds for p in plans) / 3600:.2f} GPU-hours; next "
              f"{_when(fire)}, deadline {_when(job.deadline_for(fire))}")
    if failed:
        print(f"{failed} of {len(files)} job file(s) invalid", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


# -- next --------------------------------------------------------------------------------------
def _next(args: argparse.Namespace) -> int:
    from previz.schedule.estimate import estimate_plans, forecast_fires, speeds_from_store
    from previz.schedule.run import parse_time, plans_for
    from previz.schedule.spec import load_job

    job = load_job(args.job)
    gpus = args.gpus if args.gpus is not None else (job.spec.gpus or 1)
    if gpus < 1:
        raise InvalidInput(f"--gpus {gpus}: plan for at least one GPU")
    if not 1 <= args.count <= 1000:
        raise InvalidInput(f"--count {args.count}: show between 1 and 1000 fire times")
    start = parse_time(args.start, job.tz, "--from") if args.start else datetime.now(timezone.utc)
    plans = plans_for(job)
    speeds, note = speeds_from_store(job.spec.store)
    estimate = estimate_plans(plans, gpus, speeds, note)
    forecasts = forecast_fires(job, estimate, start, args.count)
    if args.json:
        print(json.dumps(_forecast_json(job, estimate, forecasts), indent=2))
    else:
        _print_forecast(job, estimate, forecasts, gpus_assumed=args.gpus is None
                        and job.spec.gpus is None)
    for forecast in forecasts:
        if not forecast.fits:
            print(_late_warning(job, estimate, forecast), file=sys.stderr)
    return EXIT_OK


def _print_forecast(job: Any, estimate: Any, forecasts: list[Any], gpus_assumed: bool) -> None:
    gpus = f"{estimate.gpus} GPU{_s(estimate.gpus)}"
    if gpus_assumed:
        gpus += " (assumed: set gpus: in the job or pass --gpus N)"
    print(f"{job.name}: {job.spec.schedule.cron!r} in {job.timezone}, deadline "
          f"{job.deadline.text}, {gpus}")
    catalog = estimate.catalog_seconds / 3600
    print(f"work: {estimate.gpu_hours:.2f} GPU-hours"
          + (f" (catalog estimate {catalog:.2f}; corrected by this cluster's measured speeds)"
             if estimate.speeds else ""))
    for speed in estimate.speeds.values():
        print(f"  measured: {speed.model} {speed.seconds_per_frame:.3g} GPU-s per frame over "
              f"{speed.attempts} attempt{_s(speed.attempts)}")
    if estimate.ledger_note:
        print(f"  note: {estimate.ledger_note}")
    for plan in estimate.plans:
        print(f"  {Path(plan.storyboard).name}: {plan.project} {plan.sequence}, {plan.tasks} "
              f"tasks, {_span(plan.seconds)} of work, longest chain {_span(plan.chain_seconds)}")
    print(f"estimated render time: {_span(estimate.wall_seconds)} (worst case: every take "
          "rendered)")
    rows = [("fire time", "deadline", "estimated finish", "")]
    for forecast in forecasts:
        margin = forecast.margin_seconds
        verdict = (f"fits, {_span(margin)} to spare" if forecast.fits
                   else f"LATE by {_span(-margin)}")
        rows.append((_when(forecast.fire), _when(forecast.deadline), _when(forecast.finish),
                     verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3]))
        print(f"{line}  {row[3]}".rstrip())


def _late_warning(job: Any, estimate: Any, forecast: Any) -> str:
    need = estimate.gpus_to_fit(forecast.window_seconds)
    if need is None:
        chain = sum(p.chain_seconds for p in estimate.plans)
        fixed = sum(p.fixed_seconds for p in estimate.plans)
        fix = ("no number of GPUs fits: the longest chain of dependent shots alone takes "
               f"{_span(chain)}, and starting, loading and assembling {_span(fixed)} — start "
               "earlier, move the deadline or split the long shot chains")
    else:
        fix = (f"plan for {need} GPUs (check with --gpus {need}), start earlier or lighten the "
               "storyboards")
    then = {"draft": "shots that cannot finish are rendered as drafts so the cut is complete "
                     "on time",
            "fewer-steps": "shots that cannot finish are rendered at fewer steps (drafts where "
                           "even that cannot finish) so the cut is complete on time",
            "continue": "the render carries on and the cut is late"}[job.spec.on_deadline]
    return (f"WARNING: the {_when(forecast.fire)} run will not fit: estimated finish "
            f"{_when(forecast.finish)}, {_span(-forecast.margin_seconds)} after the "
            f"{_when(forecast.deadline)} deadline — {fix}. on_deadline: "
            f"{job.spec.on_deadline}: {then}.")


def _forecast_json(job: Any, estimate: Any, forecasts: list[Any]) -> dict[str, Any]:
    return {
        "job": job.name,
        "schedule": job.spec.schedule.cron,
        "timezone": job.timezone,
        "deadline": job.deadline.text,
        "gpus": estimate.gpus,
        "gpu_hours": estimate.gpu_hours,
        "catalog_seconds": estimate.catalog_seconds,
        "seconds": estimate.seconds,
        "wall_seconds": estimate.wall_seconds,
        "measured": {m: {"seconds_per_frame": s.seconds_per_frame, "attempts": s.attempts}
                     for m, s in estimate.speeds.items()},
        "ledger_note": estimate.ledger_note,
        "storyboards": [{"storyboard": p.storyboard, "project": p.project,
                         "sequence": p.sequence, "tasks": p.tasks,
                         "catalog_seconds": p.catalog_seconds, "seconds": p.seconds,
                         "gpu_seconds": p.gpu_seconds, "chain_seconds": p.chain_seconds}
                        for p in estimate.plans],
        "fires": [{"fire": f.fire.isoformat(), "deadline": f.deadline.isoformat(),
                   "finish": f.finish.isoformat(), "fits": f.fits,
                   "margin_seconds": round(f.margin_seconds, 3),
                   "gpus_to_fit": estimate.gpus_to_fit(f.window_seconds)} for f in forecasts],
    }


# -- run ---------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from previz.schedule.run import START_TIMEOUT_S, parse_time, run_job, wait_for_render
    from previz.schedule.spec import load_job

    job = load_job(args.job)
    slot = parse_time(args.slot, job.tz) if args.slot else None
    timeout = START_TIMEOUT_S if args.start_timeout is None else args.start_timeout
    if args.no_wait and args.start_timeout is not None:
        raise InvalidInput("--start-timeout: not with --no-wait, which does not wait — keep one")
    if timeout <= 0:
        raise InvalidInput(f"--start-timeout {args.start_timeout:g}: give the seconds to wait, "
                           "above 0, such as 600")
    try:
        result = run_job(job, slot=slot, address=args.address)
    except PrevizError as error:
        _say_notified(getattr(error, "notified", ()))
        raise
    start = None
    if not result.existing and not args.no_wait:
        start = wait_for_render(job, result, timeout=timeout)
    if args.json:
        print(json.dumps({"id": result.submission_id, "status": start.status if start else
                          result.status, "existing": result.existing,
                          "started": start.started if start else None,
                          "error": start.error if start else None,
                          "slot": result.slot.isoformat(),
                          "deadline": result.deadline.isoformat(), "late": result.late,
                          "address": result.address}, indent=2))
    else:
        _print_run(result, start)
    if start is not None and not start.started:
        if not args.json:
            print(f"previz: {result.submission_id}: {start.error} — see `previz logs "
                  f"{result.submission_id} --address {result.address}`; to render this slot "
                  f"again, fix that, delete the job (ray job delete {result.submission_id} "
                  f"--address {result.address}) and run again", file=sys.stderr)
        _say_notified(start.notified)
        return EXIT_FAILURE
    return EXIT_OK


def _say_notified(notified: Any) -> None:
    if notified:
        sent = sum(1 for d in notified if d.ok)
        print(f"previz: notified {sent} of {len(notified)} webhook{_s(len(notified))} of "
              "the failure", file=sys.stderr)


def _print_run(result: Any, start: Any) -> None:
    if result.existing:
        print(f"already submitted: {result.submission_id} ({result.status}) for the "
              f"{_when(result.slot)} slot — nothing to do")
        if result.status in ("FAILED", "STOPPED"):
            print(f"to render this slot again, delete that job first: ray job delete "
                  f"{result.submission_id} --address {result.address}")
    else:
        print(f"submitted: {result.submission_id} ({result.status}) for the {_when(result.slot)} "
              f"slot, deadline {_when(result.deadline)}")
        if result.late:
            print("the deadline has passed: rendering at full quality, with no deadline")
        if start is not None and start.started:
            print("started: the render is running and notifies the job's webhooks when it ends")
    print(f"follow it with: previz logs {result.submission_id} --follow --address "
          f"{result.address}")


# -- export ------------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    from previz.schedule.export import export_job
    from previz.schedule.spec import load_job

    job = load_job(args.job)
    options: dict[str, Any] = {}
    for name in ("image", "namespace", "mount", "address"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.project_root:
        options["root"] = Path(args.project_root).resolve()
    if args.to in ("crontab", "systemd") and options:
        flags = ", ".join(f"--{name.replace('root', 'project-root')}" for name in options)
        raise InvalidInput(f"{flags}: only for Kubernetes exports — drop them for --to {args.to}")
    if args.to == "kubernetes" and "address" in options:
        raise InvalidInput("--address: a RayCronJob makes its own cluster each night — use it "
                           "with --to kubernetes-cronjob")
    try:
        files = export_job(job, args.to, **options)
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    if args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
            print(f"wrote {folder / name}")
        return EXIT_OK
    for index, (name, text) in enumerate(files.items()):
        if len(files) > 1:
            print(f"{'' if index == 0 else chr(10)}# ===== {name} =====")
        sys.stdout.write(text)
    return EXIT_OK


# -- helpers -----------------------------------------------------------------------------------
def _when(moment: datetime) -> str:
    return f"{moment:%a %Y-%m-%d %H:%M} {moment.tzname()}"


def _span(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 60:
        return f"{minutes}m" if seconds >= 60 or seconds == 0 else f"{seconds:.0f}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def _s(count: int) -> str:
    return "" if count == 1 else "s"
