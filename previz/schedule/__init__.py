"""Scheduled renders: job specs, cron in a time zone, estimates against a deadline, submission
through the Ray Jobs API once per slot, exports for crontab, systemd and Kubernetes, and webhook
notifications.

    job = load_job("jobs/lighthouse_nightly.yaml")
    run_job(job)                                   # what `previz jobs run` does at each slot

Imports stay light (no ray, no torch): `previz jobs validate` and `next` run on any laptop.
"""

from previz.schedule.cron import CronError, CronSchedule, parse_cron
from previz.schedule.estimate import (
    FireForecast,
    JobEstimate,
    ModelSpeed,
    PlanWork,
    estimate_plans,
    forecast_fires,
    measured_speeds,
    plan_work,
    speeds_from_store,
)
from previz.schedule.export import TARGETS, export_job, systemd_calendars
from previz.schedule.notify import (
    Delivery,
    Webhook,
    notify,
    notify_render_end,
    render_summary,
)
from previz.schedule.run import JobRun, run_job, slot_for, submission_id_for
from previz.schedule.spec import Deadline, Job, JobSpec, load_job, parse_deadline

__all__ = [
    "CronError",
    "CronSchedule",
    "parse_cron",
    "Deadline",
    "Job",
    "JobSpec",
    "load_job",
    "parse_deadline",
    "ModelSpeed",
    "PlanWork",
    "JobEstimate",
    "FireForecast",
    "measured_speeds",
    "speeds_from_store",
    "plan_work",
    "estimate_plans",
    "forecast_fires",
    "JobRun",
    "run_job",
    "slot_for",
    "submission_id_for",
    "TARGETS",
    "export_job",
    "systemd_calendars",
    "Webhook",
    "Delivery",
    "notify",
    "notify_render_end",
    "render_summary",
]
