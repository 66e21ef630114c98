"""`previz render`: storyboard to published cut, the five stages in order."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from previz.errors import EXIT_OK, EXIT_PARTIAL, InvalidInput

__all__ = ["render_storyboard", "parse_deadline", "DEFAULT_STORE"]

DEFAULT_STORE = "./renders"
CUT_FILE_ROLES = ("review_copy", "otio", "edl", "xml", "contact_sheet")


def render_storyboard(path: str, *, store: str | None = None, address: str | None = None,
                      only: list[str] | None = None, force: bool = False,
                      as_json: bool = False, deadline: float | None = None,
                      deadline_fallback: str = "draft", editorial_media: str | None = None,
                      settings: Any = None) -> int:
    """1. load; 2. plan; 3-4. render the missing takes; 5. assemble and publish the cut.

    A render started by a scheduled job notifies the job's webhooks at the end, whatever
    happened (previz.schedule.notify)."""
    from previz.assemble import AssembleOptions, assemble_and_publish, assembly_seconds_estimate
    from previz.engine import EngineSettings, render_plan
    from previz.engine.progress import make_display
    from previz.media.encode import CODECS
    from previz.plan import plan_from_storyboard
    from previz.schedule.notify import announce_render_start, notify_render_end
    from previz.storyboard import load_storyboard

    announce_render_start()
    plan = None
    try:
        plan = plan_from_storyboard(load_storyboard(path))
        store_uri = store or DEFAULT_STORE
        settings = settings or EngineSettings()
        if deadline is not None:
            settings.deadline = deadline
            settings.deadline_fallback = deadline_fallback
            settings.deadline_reserve = assembly_seconds_estimate(plan)
        # On stderr, so --json keeps stdout to itself; a Ray job's log gets the plain lines.
        display = make_display(plan)
        try:
            report = render_plan(plan, store_uri, address=address, only=only, force=force,
                                 settings=settings, display=display)
        finally:
            display.close()
        options = AssembleOptions(editorial=CODECS[editorial_media] if editorial_media else None)
        cut = assemble_and_publish(plan, store_uri, report, options=options)
        if not sys.stdout.isatty():
            cut = _without_signatures(cut)
    except BaseException as error:
        notify_render_end(plan=plan, error=error)
        raise
    summary = {
        "version": cut.get("version"),
        "reused": cut.get("reused"),
        "cut": cut.get("cut"),
        "review": cut.get("review"),
        "files": {role: cut[role] for role in CUT_FILE_ROLES if cut.get(role)},
        "run_id": report.run_id,
        "shots": [{"id": s.id, "status": s.status, "take": s.take, "cached": s.cached,
                   **({"error": s.error} if s.error else {})} for s in report.shots],
    }
    notify_render_end(plan=plan, result=summary, gpu_seconds=report.gpu_seconds)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary, report)
    return EXIT_OK if report.complete else EXIT_PARTIAL


def parse_deadline(text: str, now: datetime | None = None) -> float:
    """`07:00` (the next time the local clock shows it) or an ISO 8601 time with an offset."""
    now = now or datetime.now().astimezone()
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if match:
        at = now.replace(hour=int(match[1]), minute=int(match[2]), second=0, microsecond=0)
        if at <= now:
            at += timedelta(days=1)
        return at.timestamp()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(f"--deadline: {text!r} is not a time — write 07:00 (local) or "
                           "2026-11-22T07:00+00:00 (with its offset)")
    return moment.timestamp()


def _without_signatures(cut: dict[str, Any]) -> dict[str, Any]:
    """Presigned links are bearer credentials: they go to a terminal, never into a log (a Ray
    job's output, a CI log, a pipe). Elsewhere the object's plain URL is shown instead."""
    def plain(value: Any) -> Any:
        if isinstance(value, str) and "X-Amz-Signature=" in value:
            return value.split("?", 1)[0].split("#", 1)[0]
        return value

    return {key: plain(value) for key, value in cut.items() if key != "links"}


def _print_summary(summary: dict[str, Any], report) -> None:
    counts: dict[str, int] = {}
    for shot in summary["shots"]:
        counts[shot["status"]] = counts.get(shot["status"], 0) + 1
    print(f"run {report.run_id}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
          f"; {report.gpu_seconds / 3600:.2f} GPU-hours")
    for shot in summary["shots"]:
        if shot["status"] == "failed":
            print(f"  {shot['id']} FAILED: {shot.get('error')}", file=sys.stderr)
    if summary.get("version"):
        again = " (unchanged edit: the existing version)" if summary.get("reused") else ""
        print(f"version: {summary['version']}{again}")
    for label in ("cut", "review"):
        if summary.get(label):
            print(f"{label}: {summary[label]}")
    for role, link in summary["files"].items():
        print(f"{role.replace('_', ' ')}: {link}")
