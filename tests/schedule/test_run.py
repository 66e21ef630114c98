"""`previz jobs run`: a slot is submitted once, against a real Ray head with its dashboard (the
`ray_head` fixture in tests/conftest.py), and a run that cannot submit fails loudly and notifies."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time

import pytest

from .schedule_support import SYNTHETIC_BOARD, job_text, write_job


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_run_twice_for_one_slot_submits_once(previz, ray_head, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    store = tmp_path / "renders"
    path = write_job(tmp_path, job_text(store, cluster=ray_head.address, extra="priority: high\n"),
                     board=SYNTHETIC_BOARD)
    client = ray_head.client()
    created: list[str] = []
    try:
        first = previz("jobs", "run", path, "--slot", "2025-01-13T19:30")
        assert first.code == 0, first.err
        job_id = "previz-test-nightly-20250113t1930z"
        created.append(job_id)
        assert f"submitted: {job_id} (PENDING) for the Mon 2025-01-13 19:30 GMT slot" in first.out
        assert "deadline Tue 2025-01-14 07:00 GMT" in first.out
        assert "the deadline has passed: rendering at full quality" in first.out

        second = previz("jobs", "run", path, "--slot", "2025-01-13T19:30:00+00:00")
        assert second.code == 0, second.err
        assert f"already submitted: {job_id} (" in second.out and "nothing to do" in second.out

        ours = [j for j in client.list_jobs() if (j.metadata or {}).get("job") == "test-nightly"]
        assert [j.submission_id for j in ours] == [job_id]
        info = client.get_job_info(job_id)
        assert info.entrypoint == f"previz render board.yaml --store {store} --json"
        assert info.metadata["slot"] == "2025-01-13T19:30:00+00:00"
        assert info.metadata["deadline"] == "2025-01-14T07:00:00+00:00"
        assert info.metadata["priority"] == "high" and info.metadata["previz"] == "1"
        assert info.metadata["project"] == "TEST" and info.metadata["sequence"] == "SQ020"
        env = info.runtime_env["env_vars"]
        assert env["PREVIZ_JOB"] == "test-nightly" and env["PREVIZ_JOB_SUBMISSION"] == job_id

        # A slot whose deadline is still ahead renders against it.
        ahead = previz("jobs", "run", path, "--slot", "2030-01-14T19:30", "--json")
        assert ahead.code == 0, ahead.err
        created.append(json.loads(ahead.out)["id"])
        assert json.loads(ahead.out)["late"] is False
        assert client.get_job_info(created[-1]).entrypoint == (
            f"previz render board.yaml --store {store} --json --deadline 2030-01-15T07:00+00:00")

        # Without --slot: the latest fire time, the same slot however often it is triggered.
        latest = [previz("jobs", "run", path, "--json") for _ in range(2)]
        assert [r.code for r in latest] == [0, 0], latest[0].err
        runs = [json.loads(r.out) for r in latest]
        created.append(runs[0]["id"])
        assert runs[0]["id"] == runs[1]["id"] != job_id
        assert (runs[0]["existing"], runs[1]["existing"]) == (False, True)
        ours = [j for j in client.list_jobs() if (j.metadata or {}).get("job") == "test-nightly"]
        assert sorted(j.submission_id for j in ours) == sorted(created)
    finally:
        for job_id in created:
            with contextlib.suppress(Exception):
                client.stop_job(job_id)


@pytest.mark.slow
def test_a_cluster_with_token_auth_refuses_a_run_without_the_token(previz, ray_head, tmp_path,
                                                                   monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either
    path = write_job(tmp_path, job_text(tmp_path / "r", cluster=ray_head.address),
                     board=SYNTHETIC_BOARD)
    result = previz("jobs", "run", path, "--slot", "2025-01-14T19:30")
    assert result.code == 1
    assert "set RAY_AUTH_TOKEN" in result.err


def _wait_for_end(client, job_id: str, limit: float = 180) -> str:
    end = time.monotonic() + limit
    while (status := client.get_job_status(job_id).value) not in ("SUCCEEDED", "FAILED",
                                                                   "STOPPED"):
        assert time.monotonic() < end, f"{job_id} still {status}"
        time.sleep(0.5)
    return status


@pytest.mark.slow
def test_a_slots_render_notifies_its_end(previz, ray_head, hooks, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    path = write_job(tmp_path, job_text(tmp_path / "renders", cluster=ray_head.address,
                                        extra=f'notify: ["{hooks.url}/ok"]\n'),
                     board=SYNTHETIC_BOARD)
    client = ray_head.client()
    job_id = "previz-test-nightly-20250115t1930z"  # each test its own slot: one cluster for all
    try:
        result = previz("jobs", "run", path, "--slot", "2025-01-15T19:30")
        assert result.code == 0, result.err
        # `jobs run` returns once the render has taken over notifying, not before.
        assert "started: the render is running" in result.out
        assert _wait_for_end(client, job_id) == "SUCCEEDED", client.get_job_logs(job_id)
    finally:
        with contextlib.suppress(Exception):
            client.stop_job(job_id)
    summary, = hooks.received["/ok"]
    assert (summary["event"], summary["submission_id"], summary["version"]) == (
        "finished", job_id, "v001")
    assert summary["counts"] == {"rendered": 1} and summary["sequence"] == "SQ020"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["broken previz on the cluster", "never started"])
def test_a_job_that_ends_before_its_render_starts_is_notified(previz, ray_head, hooks, tmp_path,
                                                              monkeypatch, case):
    # Nothing of previz runs on the cluster in either case, so the trigger must tell.
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    if case == "broken previz on the cluster":
        shadow = tmp_path / "shadow" / "previz"
        shadow.mkdir(parents=True)
        (shadow / "__init__.py").write_text('raise ImportError("this previz is broken")\n')
        environment, options = f"{{PYTHONPATH: {shadow.parent}}}", []
        reason = ("the job ended FAILED before its render started: Job entrypoint command "
                  "failed with exit code 1")
    else:
        # A PATH without Ray's tools: the job's supervisor never comes up and the job stays
        # PENDING (until Ray's own 15-minute limit, which --start-timeout undercuts).
        environment, options = "{PATH: /nonexistent}", ["--start-timeout", "8"]
        reason = "the render had not started 8 s after submission (the job is PENDING)"
    path = write_job(tmp_path, job_text(tmp_path / "renders", cluster=ray_head.address, extra=f"""\
        environment: {environment}
        notify: ["{hooks.url}/ok"]
        """), board=SYNTHETIC_BOARD)
    client = ray_head.client()
    day = 16 if case == "broken previz on the cluster" else 17
    job_id = f"previz-test-nightly-202501{day}t1930z"
    try:
        result = previz("jobs", "run", path, "--slot", f"2025-01-{day}T19:30", *options)
        assert result.code == 1, result.out + result.err
        assert f"previz: {job_id}: {reason}" in result.err
        assert f"ray job delete {job_id}" in result.err
        assert "notified 1 of 1 webhook of the failure" in result.err
    finally:
        with contextlib.suppress(Exception):
            client.stop_job(job_id)
    summary, = hooks.received["/ok"]
    assert (summary["event"], summary["submission_id"]) == ("failed", job_id)
    assert summary["error"].startswith(reason)
    if case == "broken previz on the cluster":
        assert summary["error"].endswith("its log ends: ImportError: this previz is broken")


def test_unreachable_cluster_fails_notifies_and_exits_non_zero(previz, hooks, tmp_path):
    closed = f"http://127.0.0.1:{_free_port()}"
    path = write_job(tmp_path, job_text(tmp_path / "r", cluster=closed, extra=f"""\
        notify:
          - {hooks.url}/ok
          - {{url: "{hooks.url}/ok", events: [finished]}}
        """), board=SYNTHETIC_BOARD)
    result = previz("jobs", "run", path, "--slot", "2025-01-13T19:30")
    assert result.code == 1
    assert f"cannot reach the Ray cluster at {closed}" in result.err
    assert "notified 1 of 1 webhook of the failure" in result.err
    summary, = hooks.received["/ok"]
    assert summary["event"] == "failed" and summary["job"] == "test-nightly"
    assert summary["slot"] == "2025-01-13T19:30:00+00:00"
    assert summary["submission_id"] == "previz-test-nightly-20250113t1930z"
    assert summary["error"].startswith("not submitted: cannot reach the Ray cluster")


def test_a_storyboard_broken_since_the_last_run_fails_located_and_notifies(previz, hooks,
                                                                            tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r", cluster="http://127.0.0.1:9", extra=f"""\
        notify: ["{hooks.url}/ok"]
        """), board=SYNTHETIC_BOARD.replace("duration: 4f", "duration: forever"))
    result = previz("jobs", "run", path, "--slot", "2025-01-13T19:30")
    assert result.code == 2
    assert re.search(r"board\.yaml:\d+:\d+: shots\[0\]\.duration", result.err), result.err
    assert hooks.received["/ok"][0]["event"] == "failed"


def test_a_slot_the_schedule_never_fires_at(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r"), board=SYNTHETIC_BOARD)
    result = previz("jobs", "run", path, "--slot", "2025-01-13T19:45")
    assert result.code == 2
    assert "does not fire then — the nearest slots are Mon 2025-01-13 19:30 GMT and Tue " \
           "2025-01-14 19:30 GMT" in result.err
    result = previz("jobs", "run", path, "--slot", "yesterday")
    assert result.code == 2 and "not a time — write ISO 8601" in result.err


@pytest.mark.parametrize("options, message", [
    (["--start-timeout", "0"], "--start-timeout 0: give the seconds to wait, above 0"),
    (["--no-wait", "--start-timeout", "60"], "--start-timeout: not with --no-wait"),
])
def test_start_timeout_is_checked_before_anything_is_submitted(previz, hooks, tmp_path,
                                                               options, message):
    path = write_job(tmp_path, job_text(tmp_path / "r", extra=f'notify: ["{hooks.url}/ok"]\n'),
                     board=SYNTHETIC_BOARD)
    result = previz("jobs", "run", path, "--slot", "2025-01-13T19:30", *options)
    assert result.code == 2 and message in result.err
    assert hooks.received == {}  # refused as input: nothing was tried, nobody is told
