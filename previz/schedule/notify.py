"""Webhook notifications: POST a JSON summary when a scheduled render finishes, partly finishes
or fails. Delivery is best effort by design: retries with backoff and a short timeout per try,
every webhook at once, and nothing here ever raises — a failing webhook never fails a render.

    notify([Webhook(url="https://hooks.example.com/previz")], summary)

A render started by `previz jobs run` carries its job's webhooks in its environment
(`PREVIZ_JOB_*`); `notify_render_end` reads them, so `previz render` calls it unconditionally at
its end and it does nothing for renders no job started.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from previz import __version__

__all__ = [
    "EVENTS",
    "ENV_JOB",
    "ENV_SLOT",
    "ENV_DEADLINE",
    "ENV_SUBMISSION",
    "ENV_WEBHOOKS",
    "Webhook",
    "Delivery",
    "notify",
    "render_summary",
    "notify_render_end",
    "announce_render_start",
    "webhooks_from_environment",
    "RENDER_STARTED",
]

EVENTS: tuple[str, ...] = ("finished", "partial", "failed")
# The line a render started by a job writes first: from it on the render notifies, and before
# it `previz jobs run` does (a job can fail before its render starts).
RENDER_STARTED = "previz: render started for job"
ENV_JOB = "PREVIZ_JOB"
ENV_SLOT = "PREVIZ_JOB_SLOT"
ENV_DEADLINE = "PREVIZ_JOB_DEADLINE"
ENV_SUBMISSION = "PREVIZ_JOB_SUBMISSION"
ENV_WEBHOOKS = "PREVIZ_JOB_WEBHOOKS"
MAX_WAIT_S = 30.0
_OK_STATUSES = ("rendered", "cached")


@dataclass(frozen=True)
class Webhook:
    """Where to POST: a URL, or the name of an environment variable holding one (for URLs that
    embed a secret, such as Slack's); `events` filters which summaries it receives."""

    url: str | None = None
    url_env: str | None = None
    events: tuple[str, ...] = EVENTS

    def resolve(self, environ: Mapping[str, str] | None = None) -> str | None:
        if self.url is not None:
            return self.url
        environ = os.environ if environ is None else environ
        return (environ.get(self.url_env or "") or "").strip() or None

    @property
    def label(self) -> str:
        """How messages name it: the host only, never a path or token."""
        if self.url_env:
            return f"${self.url_env}"
        parts = urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.hostname or '?'}/…"

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"url": self.url} if self.url else {"url_env": self.url_env}
        if tuple(self.events) != EVENTS:
            row["events"] = list(self.events)
        return row


@dataclass(frozen=True)
class Delivery:
    webhook: str  # the label
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


def notify(webhooks: Sequence[Webhook | str], summary: Mapping[str, Any], *,
           timeout: float = 5.0, attempts: int = 3, backoff: float = 1.0,
           environ: Mapping[str, str] | None = None,
           warn: Callable[[str], None] | None = None) -> list[Delivery]:
    """POST `summary` as JSON to every webhook that wants its event. Never raises.

    1. pick the webhooks whose `events` include the summary's event;
    2. resolve each URL (from the environment for `url_env`);
    3. deliver to all at once: each try has `timeout` seconds; connection errors, timeouts,
       429 and 5xx are retried after backoff, 1 s, 2 s, 4 s ... (or the server's Retry-After);
    4. report each webhook's delivery, and warn on stderr about those that failed.
    """
    warn = warn or _stderr
    try:
        body = json.dumps(summary, default=str).encode()
        event = str(summary.get("event", ""))
        hooks = [Webhook(url=w) if isinstance(w, str) else w for w in webhooks]
        chosen = [w for w in hooks if not event or event in w.events]
        if not chosen:
            return []

        def send(hook: Webhook) -> Delivery:
            url = hook.resolve(environ)
            if url is None:
                return Delivery(hook.label, False, 0, error=f"${hook.url_env} is not set")
            return _deliver(url, hook.label, body, timeout, max(1, attempts), backoff)

        with ThreadPoolExecutor(max_workers=min(8, len(chosen)),
                                thread_name_prefix="previz-notify") as pool:
            deliveries = list(pool.map(send, chosen))
        for delivery in deliveries:
            if not delivery.ok:
                plural = "ies" if delivery.attempts != 1 else "y"
                tries = f"after {delivery.attempts} tr{plural} " if delivery.attempts else ""
                warn(f"previz: webhook {delivery.webhook} not notified {tries}"
                     f"({delivery.error}) — delivery is best effort; nothing else is affected")
        return deliveries
    except Exception as error:  # noqa: BLE001 - notifications must never fail the caller
        warn(f"previz: notifications not sent ({type(error).__name__}: {error})")
        return []


def render_summary(event: str, *, plan: Any = None, result: Mapping[str, Any] | None = None,
                   gpu_seconds: float = 0.0, error: str | None = None,
                   environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON a webhook receives: what ran, for which job slot, counts, GPU-hours, links."""
    environ = os.environ if environ is None else environ
    counts: dict[str, int] = {}
    for shot in (result or {}).get("shots", []) or []:
        status = str(shot.get("status", "unknown"))
        counts[status] = counts.get(status, 0) + 1
    now = datetime.now(timezone.utc)
    deadline = environ.get(ENV_DEADLINE) or None
    late = None
    if deadline:
        try:
            late = now > datetime.fromisoformat(deadline)
        except ValueError:
            late = None
    summary: dict[str, Any] = {
        "previz": __version__,
        "event": event,
        "job": environ.get(ENV_JOB) or None,
        "slot": environ.get(ENV_SLOT) or None,
        "submission_id": environ.get(ENV_SUBMISSION) or None,
        "project": getattr(plan, "project", None),
        "sequence": getattr(plan, "sequence", None),
        "storyboard": getattr(plan, "storyboard", None),
        "version": (result or {}).get("version"),
        "counts": counts,
        "shots": sum(counts.values()),
        "gpu_hours": round(float(gpu_seconds) / 3600, 4),
        "review": (result or {}).get("review"),
        "cut": (result or {}).get("cut"),
        "run_id": (result or {}).get("run_id"),
        "deadline": deadline,
        "late": late,
        "finished_at": now.isoformat(timespec="seconds"),
    }
    if error:
        summary["error"] = _redact(error)
    return summary


def notify_render_end(plan: Any = None, result: Mapping[str, Any] | None = None, *,
                      gpu_seconds: float = 0.0, error: BaseException | str | None = None,
                      environ: Mapping[str, str] | None = None, **options: Any) -> list[Delivery]:
    """Call once at the end of `previz render`, whatever happened; never raises.

    Does nothing unless the render was started for a job (`PREVIZ_JOB_WEBHOOKS` is set).
    `result` is the render's JSON summary (version, review, shots with statuses), `error` the
    failure if it raised. The event is `failed` on an error, `partial` when a shot failed or was
    drafted, else `finished`.
    """
    try:
        environ = os.environ if environ is None else environ
        hooks = webhooks_from_environment(environ)
        if not hooks:
            return []
        if error is not None:
            event = "failed"
        else:
            statuses = [s.get("status") for s in (result or {}).get("shots", []) or []]
            event = "finished" if all(s in _OK_STATUSES for s in statuses) else "partial"
        text = None if error is None else (
            error if isinstance(error, str) else f"{type(error).__name__}: {error}")
        summary = render_summary(event, plan=plan, result=result, gpu_seconds=gpu_seconds,
                                 error=text, environ=environ)
        return notify(hooks, summary, environ=environ, **options)
    except Exception as failure:  # noqa: BLE001 - never fail the render
        _stderr(f"previz: notifications not sent ({type(failure).__name__}: {failure})")
        return []


def announce_render_start(environ: Mapping[str, str] | None = None) -> None:
    """Say, for a render a job started, that the render has taken over notifying."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_SUBMISSION):
        _stderr(f"{RENDER_STARTED} {environ.get(ENV_JOB)} ({environ[ENV_SUBMISSION]}): it "
                "notifies the job's webhooks when it ends")


def webhooks_from_environment(environ: Mapping[str, str] | None = None) -> list[Webhook]:
    """The job's webhooks as `previz jobs run` put them in the render's environment."""
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_WEBHOOKS)
    if not text:
        return []
    try:
        rows = json.loads(text)
        return [Webhook(url=row.get("url"), url_env=row.get("url_env"),
                        events=tuple(row.get("events", EVENTS))) for row in rows]
    except (ValueError, AttributeError, TypeError) as error:
        _stderr(f"previz: {ENV_WEBHOOKS} is not a JSON list of webhooks ({error}); "
                "no notifications sent")
        return []


# -- delivery ----------------------------------------------------------------------------------
class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET and drop the summary: report it instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _deliver(url: str, label: str, body: bytes, timeout: float, attempts: int,
             backoff: float) -> Delivery:
    error = "not tried"
    status: int | None = None
    for attempt in range(1, attempts + 1):
        wait = backoff * 2 ** (attempt - 1)
        try:
            request = urllib.request.Request(
                url, data=body, method="POST",
                headers={"Content-Type": "application/json",
                         "User-Agent": f"previz/{__version__}"})
            with _OPENER.open(request, timeout=timeout) as response:
                response.read(65536)
                return Delivery(label, True, attempt, status=response.status)
        except urllib.error.HTTPError as failure:
            status = failure.code
            error = f"HTTP {failure.code} {failure.reason}"
            failure.close()
            if failure.code != 429 and failure.code < 500:
                return Delivery(label, False, attempt, status=status, error=error)
            wait = _retry_after(failure.headers.get("Retry-After"), wait)
        except ValueError as failure:  # not a URL urllib can POST to: no point retrying
            return Delivery(label, False, attempt, error=f"not a usable URL ({failure})")
        except (urllib.error.URLError, OSError) as failure:
            reason = getattr(failure, "reason", failure)
            error = "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(
                reason) else f"{type(reason).__name__}: {reason}"
        if attempt < attempts:
            time.sleep(min(wait, MAX_WAIT_S))
    return Delivery(label, False, attempts, status=status, error=error)


def _retry_after(header: str | None, default: float) -> float:
    try:
        return max(0.0, min(float(header), MAX_WAIT_S)) if header else default
    except ValueError:
        return default


def _redact(text: str) -> str:
    try:
        from previz.store.redact import redact

        return redact(text)
    except Exception:  # noqa: BLE001 - the store may not be importable where this runs
        return text


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)
