"""`previz render`: storyboard to published cut, the five stages in order."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from previz.errors import EXIT_OK, EXIT_PARTIAL, PrevizError
from previz.media.credentials import ENV_CERT, ENV_KEY
from previz.store.registry import DEFAULT_STORE

__all__ = ["render_storyboard"]

CUT_FILE_ROLES = ("review_copy", "otio", "edl", "xml", "contact_sheet")


def render_storyboard(path: str, *, store: str | None = None, address: str | None = None,
                      only: list[str] | None = None, force: bool = False, draft: bool = False,
                      stills: bool = False,
                      as_json: bool = False, deadline: float | None = None,
                      deadline_fallback: str = "draft", editorial_media: str | None = None,
                      retakes: bool = False, ignore_decisions: bool = False,
                      settings: Any = None, started: float | None = None) -> int:
    """1. load; 2. plan; 3-4. render the missing takes; 5. assemble and publish the cut.

    A render in which no shot came out (every one failed) publishes no version: exit 1.
    A render started by a scheduled job notifies the job's webhooks at the end, whatever
    happened (previz.schedule.notify). `started` is when the program began (epoch seconds),
    for the time the render reports; else when this call did."""
    from previz.assemble import AssembleOptions, assemble_and_publish
    from previz.engine import EngineSettings, render_plan
    from previz.engine.progress import make_display
    from previz.media.credentials import signing_from_env
    from previz.media.encode import CODECS
    from previz.plan import plan_from_storyboard
    from previz.plan.forecast import DEADLINE_ASSEMBLY_MARGIN, assembly_seconds
    from previz.schedule.notify import announce_render_start, notify_render_end
    from previz.storyboard import load_storyboard

    announce_render_start()
    began = started or time.time()
    plan = None
    to_terminal = sys.stdout.isatty()
    # With --json, stdout holds the JSON alone: whatever else writes there meanwhile (Ray's
    # "(raylet) A worker died …" lines among them) goes to stderr.
    with _stdout_to_stderr(as_json):
        try:
            board = load_storyboard(path)
            plan = plan_from_storyboard(board)
            signing = signing_from_env()  # bad settings: exit 2 before anything renders
            store_uri = store or DEFAULT_STORE
            review_notes: dict[str, Any] = {}
            if not ignore_decisions:  # dailies: approved takes, retakes, notes
                plan, review_notes = _following_decisions(board, plan, store_uri, retakes)
            settings = settings or EngineSettings()
            if deadline is not None:
                settings.deadline = deadline
                settings.deadline_fallback = deadline_fallback
                settings.deadline_reserve = assembly_seconds(plan) * DEADLINE_ASSEMBLY_MARGIN
            # On stderr, so --json keeps stdout to itself; a Ray job's log gets the plain lines.
            display = make_display()
            rendering = time.time()
            try:
                report = render_plan(plan, store_uri, address=address, only=only, force=force,
                                     draft=draft, stills=stills, settings=settings,
                                     display=display)
            finally:
                display.close()
            if not any(shot.status.in_cut for shot in report.shots):
                raise PrevizError(_nothing_came_out(report))
            options = AssembleOptions(editorial=CODECS[editorial_media] if editorial_media
                                      else None, signing=signing, review_notes=review_notes)
            assembling = time.time()
            cut = assemble_and_publish(plan, store_uri, report, options=options)
            finished = time.time()
            if not to_terminal:
                cut = cut.without_signatures()
        except BaseException as error:
            notify_render_end(plan=plan, error=error)
            raise
        summary = {
            "version": cut.version,
            "reused": cut.reused,
            "cut": cut.cut,
            "review": cut.review,
            "files": {role: getattr(cut, role) for role in CUT_FILE_ROLES if getattr(cut, role)},
            "run_id": report.run_id,
            "signed_by": signing.subject if signing else None,
            "shots": [{"id": s.id, "status": s.status.value, "take": s.take, "cached": s.cached,
                       **({"error": s.error} if s.error else {})} for s in report.shots],
            "time": _estimate_and_actual(plan, report, {
                "preparation": rendering - began,
                "cluster start": report.cluster_seconds,
                "rendering": assembling - rendering - report.cluster_seconds,
                "assembly": finished - assembling}),
        }
        notify_render_end(plan=plan, result=summary, gpu_seconds=report.gpu_seconds)
    if as_json:
        print(json.dumps(summary, indent=2), flush=True)
    else:
        _print_summary(summary, report)
    return EXIT_OK if report.complete else EXIT_PARTIAL


def _following_decisions(board, plan, store_uri: str, retakes: bool):
    """The plan as the reviewers' decisions in the store want it (previz.dailies.follow), and
    their notes by shot; what was changed is said on stderr."""
    from previz.dailies.follow import follow_decisions
    from previz.plan import plan_from_storyboard
    from previz.store import open_store

    followed = follow_decisions(board, plan, open_store(store_uri), retakes=retakes)
    for message in followed.messages:
        print(f"previz: {message}", file=sys.stderr)
    if followed.changed:
        plan = plan_from_storyboard(followed.board)
    return plan, followed.notes


def _estimate_and_actual(plan, report, actual: dict[str, float]) -> dict[str, Any]:
    """The plan's forecast for what this render set out to do (previz.plan.forecast), beside
    what each part took."""
    from previz.plan.forecast import forecast

    todo = set(report.tasks_to_render)
    tasks = {task.key: task for shot in plan.shots
             for take in (*shot.takes, *shot.stand_ins())
             for task in take.tasks if task.key in todo}  # a deadline's, --draft's, --stills
    expected = forecast(plan, tasks=tasks.values(),
                        shots=[s.id for s in report.shots if not s.cached],
                        lanes=report.lanes or None, embedded=report.embedded)
    estimate = expected.as_measured()
    return {"seconds": round(sum(actual.values()), 2),
            "estimate_seconds": round(expected.wall_seconds, 2),
            "parts": {name: {"seconds": round(actual[name], 2),
                             "estimate_seconds": round(estimate[name], 2)} for name in actual}}


def _nothing_came_out(report) -> str:
    failed = [shot for shot in report.shots if shot.status == "failed"]
    first = f" — the first, {failed[0].id}: {failed[0].error}" if failed and failed[0].error \
        else ""
    return (f"run {report.run_id}: no shot rendered, none in the store ({len(failed)} failed)"
            f"; no version published{first} — fix what failed and render again; takes that "
            "did render are kept")


@contextlib.contextmanager
def _stdout_to_stderr(redirect: bool) -> Iterator[None]:
    """When `redirect`, point the process's stdout (file descriptor 1, so what native code and
    child processes write too) at stderr for the duration."""
    if not redirect:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _print_summary(summary: dict[str, Any], report) -> None:
    counts: dict[str, int] = {}
    for shot in summary["shots"]:
        counts[shot["status"]] = counts.get(shot["status"], 0) + 1
    print(f"run {report.run_id}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
          f"; {report.gpu_seconds / 3600:.2f} GPU-hours")
    for shot in summary["shots"]:
        if shot["status"] == "failed":
            print(f"  {shot['id']} FAILED: {shot.get('error')}", file=sys.stderr)
    took = summary["time"]  # taken/estimated, part by part
    print(f"time: {took['seconds']:.0f} s, estimated {took['estimate_seconds']:.0f} s (" +
          ", ".join(f"{name} {part['seconds']:.1f}/{part['estimate_seconds']:.1f} s"
                    for name, part in took["parts"].items()) + ")")
    if summary.get("version"):
        again = " (unchanged edit: the existing version)" if summary.get("reused") else ""
        print(f"version: {summary['version']}{again}")
    for label in ("cut", "review"):
        if summary.get(label):
            print(f"{label}: {summary[label]}")
    for role, link in summary["files"].items():
        print(f"{role.replace('_', ' ')}: {link}")
    if summary.get("signed_by"):
        print(f"signed by: {summary['signed_by']} (content credentials: previz verify FILE)")
    else:
        print(f"unsigned: no content credentials — set {ENV_CERT} and {ENV_KEY} to sign "
              "takes and cuts")
