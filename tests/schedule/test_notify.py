"""Webhooks, delivered to a real HTTP server on loopback: one that answers, one that fails, one
that hangs. Delivery is best effort and never raises."""

import json

from previz.schedule.notify import (
    ENV_DEADLINE,
    ENV_JOB,
    ENV_WEBHOOKS,
    Webhook,
    notify,
    notify_render_end,
    render_summary,
)

FAST = {"timeout": 0.5, "attempts": 3, "backoff": 0.01}
RESULT = {"version": "v003", "review": "https://review.example/SQ010/v003/review.html",
          "cut": "s3://b/p/TEST/SQ010/v003/SQ010_previz_v003.mp4", "run_id": "r1",
          "shots": [{"id": "SH0010", "status": "rendered"}, {"id": "SH0020", "status": "cached"},
                    {"id": "SH0030", "status": "draft"}]}


def test_summary_delivered_to_every_webhook_despite_failing_and_hanging_ones(hooks):
    warnings: list[str] = []
    summary = render_summary("partial", result=RESULT, gpu_seconds=5400,
                             environ={ENV_JOB: "nightly"})
    deliveries = notify([f"{hooks.url}/ok", f"{hooks.url}/fail", f"{hooks.url}/hang",
                         f"{hooks.url}/flaky"], summary, warn=warnings.append, **FAST)
    by_hook = {d.webhook: d for d in deliveries}
    assert len(deliveries) == 4
    assert [d.ok for d in deliveries] == [True, False, False, True]
    received, = hooks.received["/ok"]
    assert received["event"] == "partial" and received["job"] == "nightly"
    assert received["version"] == "v003"
    assert received["counts"] == {"rendered": 1, "cached": 1, "draft": 1}
    assert received["gpu_hours"] == 1.5
    assert received["review"] == RESULT["review"]
    # A server error is retried; the last try is reported.
    assert hooks.hits["/fail"] == 3 and deliveries[1].status == 500
    assert deliveries[1].error == "HTTP 500 Internal Server Error"
    # A hung server times out on each try.
    assert deliveries[2].error == "timed out" and deliveries[2].attempts == 3
    # A flaky one succeeds on its retry.
    assert deliveries[3].attempts == 2 and hooks.received["/flaky"][0]["event"] == "partial"
    assert len(warnings) == 2 and all("nothing else is affected" in w for w in warnings)
    assert all("/fail" not in w and "/hang" not in w for w in warnings)  # hosts only
    assert set(by_hook) == {f"{hooks.url.split(':')[0]}://127.0.0.1/…"}


def test_client_errors_are_not_retried(hooks):
    delivery, = notify([f"{hooks.url}/gone"], {"event": "failed"}, warn=lambda _: None, **FAST)
    assert not delivery.ok and delivery.attempts == 1 and delivery.status == 404
    assert hooks.hits["/gone"] == 1


def test_unreachable_webhook_never_raises():
    delivery, = notify(["http://127.0.0.1:9/nothing-listens"], {"event": "failed"},
                       warn=lambda _: None, **FAST)
    assert not delivery.ok and delivery.attempts == 3
    assert notify(["not a url at all"], {"event": "failed"}, warn=lambda _: None, **FAST)[0].ok \
        is False


def test_events_filter_and_url_from_the_environment(hooks):
    failures_only = Webhook(url_env="PREVIZ_TEST_HOOK", events=("failed",))
    environ = {"PREVIZ_TEST_HOOK": f"{hooks.url}/ok"}
    assert notify([failures_only], {"event": "finished"}, environ=environ, **FAST) == []
    delivery, = notify([failures_only], {"event": "failed"}, environ=environ, **FAST)
    assert delivery.ok and delivery.webhook == "$PREVIZ_TEST_HOOK"
    missing, = notify([failures_only], {"event": "failed"}, environ={}, warn=lambda _: None,
                      **FAST)
    assert not missing.ok and missing.error == "$PREVIZ_TEST_HOOK is not set"


def test_render_end_notifies_only_jobs(hooks):
    assert notify_render_end(result=RESULT, environ={}) == []  # not started by a job
    environ = {ENV_JOB: "nightly", ENV_DEADLINE: "2000-01-01T07:00:00+00:00",
               ENV_WEBHOOKS: json.dumps([{"url": f"{hooks.url}/ok"}])}
    finished = {**RESULT, "shots": RESULT["shots"][:2]}
    assert notify_render_end(result=finished, gpu_seconds=36, environ=environ, **FAST)[0].ok
    assert notify_render_end(result=RESULT, environ=environ, **FAST)[0].ok
    notify_render_end(error=RuntimeError("GPU node lost"), environ=environ, **FAST)
    events = [(s["event"], s["late"]) for s in hooks.received["/ok"]]
    assert events == [("finished", True), ("partial", True), ("failed", True)]
    assert hooks.received["/ok"][0]["gpu_hours"] == 0.01
    assert hooks.received["/ok"][2]["error"] == "RuntimeError: GPU node lost"


def test_render_end_survives_a_broken_environment(capsys):
    assert notify_render_end(result=RESULT, environ={ENV_WEBHOOKS: "not json"}) == []
    assert "not a JSON list of webhooks" in capsys.readouterr().err
