"""`previz submit / status / logs / list / cancel` against a real Ray head with its dashboard and
token authentication (the `ray_head` fixture in tests/conftest.py): the render runs as a Ray Job
on that cluster and publishes its takes and cut into the store."""

import json
import re
import time

import pytest
from engine_support import synthetic_board

from previz.cli import main
from previz.plan import plan_from_storyboard
from previz.store import has_take, open_store
from previz.storyboard import load_storyboard

pytestmark = pytest.mark.slow


def previz(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def wait_for(head, job_id: str, states: set[str], limit: float = 240) -> str:
    client, until = head.client(), time.monotonic() + limit
    while (status := client.get_job_status(job_id).value) not in states:
        assert time.monotonic() < until, f"{job_id} still {status} after {limit} s"
        time.sleep(0.5)
    return status


def test_submit_twice_renders_once_and_logs_follow_to_the_end(ray_head, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    board = synthetic_board(tmp_path, """\
        - {id: SH0010, duration: 12f, prompt: harbour}
        - {id: SH0020, duration: 8f, prompt: boat, continue: SH0010}
        """, options="{gpus: 1, seconds_per_frame: 0.01}")
    store = tmp_path / "store"
    code, out, _ = previz(capsys, "submit", str(board), "--address", ray_head.address,
                          "--store", str(store))
    job_id = re.search(r"submitted: (\S+) \(PENDING\)", out)[1]
    assert code == 0 and job_id.startswith("previz-test-sq010-")
    code, out, _ = previz(capsys, "submit", str(board), "--address", ray_head.address,
                          "--store", str(store))
    assert code == 0 and f"already submitted: {job_id} (" in out

    code, logs, _ = previz(capsys, "logs", job_id, "--follow", "--address", ray_head.address)
    assert code == 0
    assert wait_for(ray_head, job_id, {"SUCCEEDED", "FAILED", "STOPPED"}) == "SUCCEEDED", logs
    summary = json.loads(logs[logs.index("{"):logs.rindex("}") + 1])
    assert [(s["id"], s["status"]) for s in summary["shots"]] == [("SH0010", "rendered"),
                                                                   ("SH0020", "rendered")]
    plan = plan_from_storyboard(load_storyboard(board))
    assert all(has_take(open_store(str(store)), take.key) for take in plan.takes())

    code, out, _ = previz(capsys, "status", job_id, "--address", ray_head.address)
    assert code == 0 and f"{job_id}  SUCCEEDED" in out
    code, out, _ = previz(capsys, "list", "--address", ray_head.address)
    assert code == 0 and re.search(rf"{job_id}\s+SUCCEEDED\s+TEST SQ010", out)
    # Submitting again after it finished still finds the job: nothing renders twice.
    code, out, _ = previz(capsys, "submit", str(board), "--address", ray_head.address)
    assert code == 0 and f"already submitted: {job_id} (SUCCEEDED)" in out


def test_cancel_stops_a_running_render(ray_head, tmp_path, monkeypatch, capsys):
    token = tmp_path / "token"
    token.write_text(ray_head.token + "\n")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))  # Ray's own token-file variable
    board = synthetic_board(tmp_path, "".join(
        f"- {{id: SH{n}0, duration: 24f, prompt: slow {n}}}\n" for n in range(1, 9)),
        options="{gpus: 1, seconds_per_frame: 0.5}")
    code, out, _ = previz(capsys, "submit", str(board), "--address", ray_head.address,
                          "--store", str(tmp_path / "store"))
    job_id = re.search(r"submitted: (\S+)", out)[1]
    assert code == 0
    wait_for(ray_head, job_id, {"RUNNING"})
    code, out, _ = previz(capsys, "cancel", job_id, "--address", ray_head.address)
    assert code == 0 and f"{job_id}: stopping" in out
    assert wait_for(ray_head, job_id, {"SUCCEEDED", "FAILED", "STOPPED"}, 60) == "STOPPED"
    code, out, _ = previz(capsys, "status", job_id, "--address", ray_head.address)
    assert "STOPPED" in out


def test_unknown_job_and_missing_token_are_clear(ray_head, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_head.token)
    code, _, err = previz(capsys, "status", "previz-nope", "--address", ray_head.address)
    assert code == 1 and "no job 'previz-nope' on this cluster" in err
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("HOME", str(tmp_path))
    code, _, err = previz(capsys, "list", "--address", ray_head.address)
    assert code == 1 and "set RAY_AUTH_TOKEN" in err
