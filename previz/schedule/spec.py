"""Job specs: a scheduled render, validated like a storyboard (every problem at once, located).

    name: lighthouse-sq020-nightly
    storyboards: [../storyboards/lighthouse_sq020.yaml]   # relative to this file
    store: s3://studio-previz/lighthouse
    cluster: http://ray-head.previz.internal:8265          # the cluster's dashboard (Jobs API)
    schedule: {cron: "30 19 * * MON-FRI", timezone: Europe/London}
    deadline: "07:00"                                      # local; or "Mon 07:00"
    on_deadline: draft                                     # draft | fewer-steps | continue
    environment: {PREVIZ_S3_READ_TIMEOUT: "30"}            # for the render on the cluster
    priority: high                                         # low | normal | high
    gpus: 8                                                # what `previz jobs next` plans for
    notify: [{url_env: PREVIZ_SLACK_WEBHOOK, events: [partial, failed]}]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from previz.errors import InvalidInput, Problem
from previz.schedule.cron import CronError, CronSchedule, parse_cron
from previz.schedule.notify import EVENTS, Webhook
from previz.storyboard.errors import did_you_mean, messages_from_validation_error
from previz.storyboard.yaml_source import YamlProblem, locate, read_yaml, utf8_text

__all__ = [
    "Deadline",
    "Job",
    "JobSpec",
    "ON_DEADLINE",
    "PRIORITIES",
    "load_job",
    "job_from_text",
    "parse_deadline",
    "zone",
]

ON_DEADLINE = ("draft", "fewer-steps", "continue")
PRIORITIES = ("low", "normal", "high")
MAX_JOB_BYTES = 256 * 1024
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,50}[a-z0-9])?$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DEADLINE_RE = re.compile(r"^\s*(?:([A-Za-z]{3})[a-z]*\s+)?(\d{1,2}):(\d{2})\s*$")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# Store schemes a job may name (previz.store registers these two); checked here without
# importing the store, so `previz jobs validate` stays light.
_STORE_SCHEMES = ("s3", "file")


@dataclass(frozen=True)
class Deadline:
    """A local time of day (optionally on a weekday) a job's cut must exist by."""

    text: str
    hour: int
    minute: int
    weekday: int | None = None  # 0 = Sunday, as in cron

    @property
    def cron(self) -> CronSchedule:
        day = "*" if self.weekday is None else str(self.weekday)
        return parse_cron(f"{self.minute} {self.hour} * * {day}")

    def after(self, fire: datetime, tz: ZoneInfo) -> datetime:
        """The first time this deadline comes round strictly after `fire` (DST as in cron.py)."""
        return self.cron.next_after(fire, tz)


def parse_deadline(value: Any) -> Deadline:
    """'07:00' or 'Mon 07:00' -> Deadline. Raises ValueError saying the fix."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 19:30 as the base-60 number 1170.
        hours, minutes = divmod(value, 60)
        raise ValueError(f"{hours}:{minutes:02d} was read by YAML as the number {value} — quote "
                         f"it: deadline: \"{hours:02d}:{minutes:02d}\"")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time — write the local time as \"07:00\", or "
                         "\"Mon 07:00\" for a day of the week")
    match = _DEADLINE_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a time — write the local time as \"07:00\" (24-hour "
                         "HH:MM), or \"Mon 07:00\" for a day of the week")
    day_text, hour, minute = match.group(1), int(match.group(2)), int(match.group(3))
    if hour > 23 or minute > 59:
        raise ValueError(f"{value!r} is not a time of day — hours run 00-23 and minutes 00-59")
    weekday = None
    if day_text:
        upper = day_text.upper()
        if upper not in _DAYS:
            raise ValueError(f"{value!r}: {day_text!r} is not a day — use Mon, Tue, Wed, Thu, "
                             f"Fri, Sat or Sun{did_you_mean(upper, _DAYS)}")
        weekday = _DAYS.index(upper)
    return Deadline(text=value.strip(), hour=hour, minute=minute, weekday=weekday)


def zone(name: Any) -> ZoneInfo:
    """The IANA time zone `name`. Raises ValueError with the nearest known names."""
    import zoneinfo

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{name!r} is not a time zone — write an IANA name such as "
                         "Europe/London or America/Los_Angeles")
    try:
        return ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        known = sorted(zoneinfo.available_timezones())
        if not known:
            raise ValueError(f"{name!r}: no time zone database on this machine — install the "
                             "tzdata package (pip install tzdata)") from None
        hint = did_you_mean(name, known) or (
            f" — did you mean {name.title()!r}?" if name.title() in known else "")
        raise ValueError(f"{name!r} is not a known time zone — write an IANA name such as "
                         f"Europe/London or America/Los_Angeles{hint}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleSpec(_Strict):
    cron: str = Field(description="five cron fields or a macro such as @daily, in quotes")
    timezone: str = Field(description="IANA time zone the schedule and deadline are local to")

    @field_validator("cron", mode="before")
    @classmethod
    def _cron(cls, value: Any) -> str:
        try:
            parse_cron(value)
        except CronError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("timezone", mode="before")
    @classmethod
    def _timezone(cls, value: Any) -> str:
        zone(value)
        return value


class WebhookSpec(_Strict):
    url: str | None = Field(default=None, description="an http(s) URL to POST the summary to")
    url_env: str | None = Field(
        default=None, description="environment variable holding the URL (keeps secrets out)")
    events: tuple[Literal["finished", "partial", "failed"], ...] = EVENTS

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_http_url(value, "a webhook")
        return value

    @field_validator("url_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not ENV_RE.match(value):
            raise ValueError(f"{value!r} is not an environment variable name — use letters, "
                             "digits and '_' such as PREVIZ_SLACK_WEBHOOK")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> WebhookSpec:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url: or url_env:")
        return self


class JobSpec(_Strict):
    """The fields of a job file, as written."""

    name: str = Field(description="lowercase letters, digits and '-', at most 52")
    description: str | None = None
    storyboards: list[str] = Field(min_length=1, description="paths relative to the job file")
    store: str = Field(description="s3://bucket/prefix or an absolute path on shared storage")
    cluster: str = Field(description="the Ray dashboard address, http://HEAD:8265")
    schedule: ScheduleSpec
    deadline: str = Field(description="local time the cut must exist by: \"07:00\"")
    # What a shot that cannot finish in time gets: the draft animatic, its model at a quarter of
    # the steps (a draft when even that cannot finish), or nothing: the render runs late.
    on_deadline: Literal["draft", "fewer-steps", "continue"] = "draft"
    environment: dict[str, str] = Field(
        default_factory=dict, description="variables the render runs with on the cluster (not "
                                          "for secrets: Ray shows them on its dashboard)")
    priority: Literal["low", "normal", "high"] = "normal"
    gpus: int | None = Field(default=None, description="GPUs the estimate in `next` plans for")
    notify: list[WebhookSpec] = Field(default_factory=list)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if isinstance(value, str) and not NAME_RE.match(value):
            raise ValueError(
                f"{value!r} is not a job name — use 1 to 52 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit (such as lighthouse-nightly); it "
                "names Ray submissions, systemd units and Kubernetes objects")
        return value

    @field_validator("store", mode="before")
    @classmethod
    def _store(cls, value: Any) -> Any:
        if isinstance(value, str):
            _check_store(value)
        return value

    @field_validator("cluster", mode="before")
    @classmethod
    def _cluster(cls, value: Any) -> Any:
        if isinstance(value, str):
            _check_cluster(value)
        return value

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline(cls, value: Any) -> Any:
        parse_deadline(value)
        return value

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= 100_000):
            raise ValueError(f"{value!r} is not a GPU count — write a whole number such as 8")
        return value

    @field_validator("environment", mode="before")
    @classmethod
    def _environment(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, text in value.items():
                if not isinstance(name, str) or not ENV_RE.match(name):
                    raise ValueError(f"{name!r} is not an environment variable name — use "
                                     "letters, digits and '_' such as HF_HOME")
                if name.startswith("PREVIZ_JOB"):
                    raise ValueError(f"{name}: PREVIZ_JOB* variables are set by `previz jobs "
                                     "run` itself — choose another name")
                if isinstance(text, (bool, list, dict)) or text is None:
                    raise ValueError(f"{name}: {text!r} is not a value — write a string, "
                                     "quoted if YAML would read it otherwise")
            return {name: str(text) for name, text in value.items()}
        return value

    @field_validator("notify", mode="before")
    @classmethod
    def _notify(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"url": item} if isinstance(item, str) else item for item in value]
        return value


@dataclass(frozen=True)
class Job:
    """A validated job: the spec plus what it means (paths resolved, schedule parsed)."""

    spec: JobSpec
    source: str  # the path as the user wrote it, for messages
    path: Path  # resolved job file
    storyboards: tuple[Path, ...]  # resolved, in the order written
    cron: CronSchedule
    tz: ZoneInfo
    deadline: Deadline
    webhooks: tuple[Webhook, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def timezone(self) -> str:
        return self.spec.schedule.timezone

    def fires_after(self, moment: datetime, count: int) -> list[datetime]:
        return self.cron.fire_times(moment, self.tz, count)

    def deadline_for(self, fire: datetime) -> datetime:
        return self.deadline.after(fire, self.tz)


def load_job(path: str | Path) -> Job:
    """Read and validate a job file.

    1. read the file (it must exist and be small UTF-8 text);
    2. parse YAML safely, remembering where each field is written;
    3. validate the fields (cron, time zone, deadline, addresses, webhooks);
    4. check the storyboards it names exist (paths relative to the job file).
    Raises InvalidInput with every problem, each as file:line:col. Storyboards themselves are
    checked by `previz jobs validate` and `run`, through the storyboard loader.
    """
    source = Path(path)
    shown = str(path)
    if not source.exists():
        raise InvalidInput(Problem(shown, 1, 1, "no such file — check the path of the job file"))
    if source.is_dir():
        raise InvalidInput(Problem(shown, 1, 1, "is a folder — name a job .yaml file"))
    if source.stat().st_size > MAX_JOB_BYTES:
        raise InvalidInput(Problem(shown, 1, 1, f"a job file is at most {MAX_JOB_BYTES // 1024} "
                                   "KB — is this a job file?"))
    try:
        text = utf8_text(source.read_bytes())
    except YamlProblem as problem:
        raise InvalidInput(Problem(shown, problem.line, problem.column, problem.message)) \
            from None
    return job_from_text(text, shown, source.resolve())


def job_from_text(text: str, source: str, path: Path) -> Job:
    """Steps 2-4 of `load_job` on text already read; `source` names it in messages, `path` is
    the resolved job file (storyboard paths are relative to its folder)."""
    try:
        document = read_yaml(text)
    except YamlProblem as problem:
        message = problem.message
        if "found character '*'" in message or "found character '@'" in message or (
                "expected alphabetic or numeric character" in message):
            message += " — quote the cron expression: cron: \"*/15 * * * *\""
        raise InvalidInput(Problem(source, problem.line, problem.column, message)) from None
    if not isinstance(document.data, dict):
        kind = "empty" if document.data is None else type(document.data).__name__
        raise InvalidInput(Problem(source, 1, 1, f"the top level is {kind}, not a mapping — a "
                                   "job starts with fields such as `name:` and `storyboards:`"))

    def located(loc: tuple, message: str) -> Problem:
        line, column = locate(document.positions, loc)
        return Problem(source, line, column, message)

    written = document.data.get("storyboards")
    storyboards: tuple[Path, ...] = ()
    paths: list[tuple[tuple, str]] = []
    if isinstance(written, list) and all(isinstance(item, str) for item in written):
        storyboards, paths = _storyboard_paths(written, path.parent)
    try:
        spec = JobSpec.model_validate(document.data)
    except ValidationError as error:
        problems = [located(loc, msg) for loc, msg in
                    [*messages_from_validation_error(error, JobSpec), *paths]]
        raise InvalidInput(sorted(problems, key=lambda p: (p.line, p.column))) from None
    if paths:
        raise InvalidInput([located(loc, msg) for loc, msg in paths])
    return Job(
        spec=spec,
        source=source,
        path=path,
        storyboards=storyboards,
        cron=parse_cron(spec.schedule.cron),
        tz=zone(spec.schedule.timezone),
        deadline=parse_deadline(spec.deadline),
        webhooks=tuple(Webhook(url=w.url, url_env=w.url_env, events=w.events)
                       for w in spec.notify),
    )


def _storyboard_paths(written: list[str], folder: Path) -> tuple[tuple[Path, ...],
                                                                  list[tuple[tuple, str]]]:
    found: list[Path] = []
    problems: list[tuple[tuple, str]] = []
    seen: dict[Path, int] = {}
    for index, text in enumerate(written):
        loc = ("storyboards", index)
        path = (folder / text).resolve()
        if not path.exists():
            problems.append((loc, f"storyboards[{index}]: {text!r} does not exist (looked for "
                                  f"{path}) — paths are relative to the job file"))
        elif path.is_dir():
            problems.append((loc, f"storyboards[{index}]: {text!r} is a folder — name each "
                                  "storyboard .yaml file"))
        elif path.suffix not in (".yaml", ".yml"):
            problems.append((loc, f"storyboards[{index}]: {text!r} is not a .yaml storyboard"))
        elif path in seen:
            problems.append((loc, f"storyboards[{index}]: {text!r} is listed twice (first as "
                                  f"storyboards[{seen[path]}]) — keep one"))
        else:
            seen[path] = index
        found.append(path)
    return tuple(found), problems


def _check_http_url(value: str, what: str) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{value!r} is not a URL — write {what} as https://host/path") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError(f"{value!r} is not an http(s) URL — write {what} as https://host/path")
    if "@" in parts.netloc:
        raise ValueError(f"{what} URL {parts.scheme}://***@{parts.hostname}: carries a user and "
                         "password — keep credentials out of job files (use url_env:)")


def _check_cluster(value: str) -> None:
    if value.startswith("ray://"):
        raise ValueError(f"{value!r} is a Ray Client address — jobs go to the cluster's "
                         "dashboard: http://HEAD:8265")
    if "://" not in value:
        raise ValueError(f"{value!r} has no scheme — write the dashboard address as "
                         f"http://{value or 'HEAD:8265'}")
    _check_http_url(value, "the cluster's dashboard")


def _check_store(value: str) -> None:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if match:
        scheme = match.group(1).lower()
        if scheme not in _STORE_SCHEMES:
            raise ValueError(f"{value!r}: unknown store scheme {scheme!r} — use "
                             "s3://bucket/prefix or an absolute path")
        if "@" in value.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError("the store URI carries credentials — keep them in the environment "
                             "or an AWS profile, never in a job file")
        if scheme == "s3" and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/|$)", value):
            raise ValueError(f"{value!r} is not an S3 store — write s3://bucket/prefix (bucket "
                             "names are lowercase)")
        return
    if not value.startswith("/"):
        raise ValueError(
            f"{value!r} is a relative folder — the render runs on the cluster, where it would "
            "land in the job's temporary folder and vanish; use s3://bucket/prefix or an "
            "absolute path on storage every node shares")
