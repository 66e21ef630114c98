"""`previz jobs next`: fire times, GPU-hours and finish against the deadline, by hand.

The storyboard (schedule_support.WAN_BOARD) is three shots of Wan 2.1 1.3B at 24 fps, rendered
at the model's 16 fps and native 832x480 with 50 steps. Cut frames 96, 48 and 48 need source
frames 0..63 and 0..31 (frame i shows floor(i * 16/24 + 1/2)), so 64 and 32, rounded up to Wan's
4k+1: 65, 33 and 33 generated frames. The catalog's published figure for this model is 261
GPU-seconds for 81 frames x 50 steps, so a task costs 261 / (81 * 50) * frames * 50 seconds.
Whatever the GPUs, a render also costs the fixed parts of the plan forecast: preparation,
connecting to the cluster, a worker starting and loading the model (30 s by the catalog) and
assembling the 192-frame cut at 832x480.
"""

import json
from datetime import datetime, timedelta, timezone

import pytest

from previz.plan import forecast
from previz.schedule.estimate import estimate_plans, forecast_fires, plan_work
from previz.schedule.run import plans_for
from previz.schedule.spec import load_job

from .schedule_support import SYNTHETIC_BOARD, job_text, write_job

SHOT_A = round(261 / (81 * 50) * 65 * 50, 3)  # 209.444 s
SHOT_B = round(261 / (81 * 50) * 33 * 50, 3)  # 106.333 s
TOTAL = SHOT_A + 2 * SHOT_B  # 422.11 s
FIXED = (forecast.PREPARATION_SECONDS + forecast.CONNECT_SECONDS
         + forecast.WORKER_START_SECONDS + 30.0 + forecast.ASSEMBLY_FIXED_SECONDS
         + 192 * 832 * 480 / 1e6 * forecast.ASSEMBLY_SECONDS_PER_MEGAPIXEL_FRAME)
UTC = timezone.utc


def test_hand_computation_matches_the_plan(tmp_path):
    job = load_job(write_job(tmp_path, job_text(tmp_path / "renders")))
    work = plan_work(plans_for(job)[0])
    assert work.tasks == 3
    assert work.catalog_seconds == pytest.approx(TOTAL)
    assert work.gpu_seconds == pytest.approx(TOTAL)
    assert work.chain_seconds == pytest.approx(SHOT_A)  # no shot waits for another
    assert work.fixed_seconds == pytest.approx(FIXED)
    assert work.wall_seconds(1) == pytest.approx(TOTAL + FIXED)
    assert work.wall_seconds(4) == pytest.approx(SHOT_A + FIXED)  # the longest shot bounds it


def test_next_without_a_ledger_uses_the_catalog(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "renders"))
    result = previz("jobs", "next", path, "--gpus", "1", "--count", "2", "--json",
                    "--from", "2025-01-10T20:00")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["gpu_hours"] == pytest.approx(TOTAL / 3600)
    assert data["wall_seconds"] == pytest.approx(TOTAL + FIXED)
    assert data["measured"] == {}
    assert "no renders in the ledger" in data["ledger_note"]
    # Friday 20:00: the next weeknight slots are Monday and Tuesday 19:30.
    first = data["fires"][0]
    assert first["fire"] == "2025-01-13T19:30:00+00:00"
    assert first["deadline"] == "2025-01-14T07:00:00+00:00"
    finish = datetime(2025, 1, 13, 19, 30, tzinfo=UTC) + timedelta(seconds=TOTAL + FIXED)
    assert datetime.fromisoformat(first["finish"]) == finish
    assert first["fits"] is True
    assert first["margin_seconds"] == pytest.approx(11.5 * 3600 - TOTAL - FIXED, abs=1e-3)
    assert data["fires"][1]["fire"] == "2025-01-14T19:30:00+00:00"


def test_measured_speeds_from_the_ledger_correct_the_estimate(previz, tmp_path):
    from previz.store import open_store
    from previz.store.ledger import Attempt, append_attempts

    store = tmp_path / "renders"
    now = datetime.now(UTC)

    def attempt(model: str, frames: int, seconds: float, outcome: str = "ok") -> Attempt:
        return Attempt(run_id="run1", shot="SH0010", take_key="a" * 64, model=model,
                       attempt=1, outcome=outcome, started_at=now - timedelta(hours=1),
                       finished_at=now, frames=frames, gpu_seconds=seconds, node="n1")

    append_attempts(open_store(str(store)), [
        attempt("wan2.1-t2v-1.3b", 65, 325.0),
        attempt("wan2.1-t2v-1.3b", 33, 165.0),  # 490 s / 98 frames = 5 s per frame here
        attempt("wan2.1-t2v-1.3b", 65, 9999.0, outcome="failed"),  # not a speed
        attempt("ltx-video", 121, 3.0),  # not in this plan
    ])
    path = write_job(tmp_path, job_text(store, extra="gpus: 1\n"))
    result = previz("jobs", "next", path, "--count", "1", "--json", "--from", "2025-01-10T20:00")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    corrected = (65 + 33 + 33) * 5.0  # 655 s instead of the catalog's 422.11 s
    assert data["seconds"] == pytest.approx(corrected)
    assert data["catalog_seconds"] == pytest.approx(TOTAL)
    assert data["gpu_hours"] == pytest.approx(corrected / 3600)
    assert data["measured"] == {"wan2.1-t2v-1.3b": {"seconds_per_frame": 5.0, "attempts": 2}}
    assert data["ledger_note"] is None
    finish = datetime(2025, 1, 13, 19, 30, tzinfo=UTC) + timedelta(seconds=corrected + FIXED)
    assert datetime.fromisoformat(data["fires"][0]["finish"]) == finish

    text = previz("jobs", "next", path, "--count", "1", "--from", "2025-01-10T20:00")
    assert "0.18 GPU-hours (catalog estimate 0.12; corrected by this cluster's measured" in (
        text.out)
    assert "measured: wan2.1-t2v-1.3b 5 GPU-s per frame over 2 attempts" in text.out


def test_warning_when_the_render_will_not_fit(previz, tmp_path):
    # Starts 06:30, due 06:35: 300 s for 422 s of work on one GPU and about 40 s fixed.
    path = write_job(tmp_path, job_text(tmp_path / "r", cron="30 6 * * *", deadline='"06:35"'))
    result = previz("jobs", "next", path, "--gpus", "1", "--count", "1",
                    "--from", "2025-01-10T00:00")
    assert result.code == 0
    assert f"LATE by {round((TOTAL + FIXED - 300) / 60)}m" in result.out
    assert "WARNING: the Fri 2025-01-10 06:30 GMT run will not fit" in result.err
    # Two GPUs: max(422.11 / 2, 209.444) + FIXED = 247 s <= 300 s.
    assert "plan for 2 GPUs (check with --gpus 2)" in result.err
    assert "rendered as drafts" in result.err
    fits = previz("jobs", "next", path, "--gpus", "2", "--count", "1", "--from", "2025-01-10")
    assert "WARNING" not in fits.err
    assert f"fits, {300 - TOTAL / 2 - FIXED:.0f}s to spare" in fits.out


def test_no_gpu_count_fits_a_chain_longer_than_the_window(previz, tmp_path):
    # 180 s between start and deadline; the 4-second shot alone takes 209 s.
    path = write_job(tmp_path, job_text(tmp_path / "r", cron="30 6 * * *", deadline='"06:33"'))
    result = previz("jobs", "next", path, "--gpus", "64", "--count", "1", "--from", "2025-01-10")
    assert "no number of GPUs fits: the longest chain of dependent shots alone takes 3m" in (
        result.err)


def test_deadline_window_follows_daylight_saving(tmp_path):
    job = load_job(write_job(tmp_path, job_text(tmp_path / "r", cron="30 19 * * *")))
    estimate = estimate_plans(plans_for(job), 1)
    spring, = forecast_fires(job, estimate, datetime(2025, 3, 29, 12, tzinfo=UTC), 1)
    autumn, = forecast_fires(job, estimate, datetime(2025, 10, 25, 12, tzinfo=UTC), 1)
    assert spring.window_seconds == 10.5 * 3600  # the night loses an hour
    assert autumn.window_seconds == 12.5 * 3600  # and gains one in October
    assert spring.margin_seconds == pytest.approx(10.5 * 3600 - TOTAL - FIXED, abs=1e-3)


def test_continued_shots_form_a_chain(tmp_path):
    board = SYNTHETIC_BOARD.replace(
        "  - {id: SH0010, duration: 4f, prompt: harbour}",
        "  - {id: SH0010, duration: 24f, prompt: harbour}\n"
        "  - {id: SH0020, duration: 12f, prompt: rope, continue: SH0010}\n"
        "  - {id: SH0030, duration: 6f, prompt: gull}")
    job = load_job(write_job(tmp_path, job_text(tmp_path / "r"), board=board))
    work = plan_work(plans_for(job)[0])
    # synthetic: 0.001 s per frame-step, one step, at the cut's rate.
    assert work.seconds == pytest.approx(0.001 * (24 + 12 + 6))
    assert work.chain_seconds == pytest.approx(0.001 * (24 + 12))
    assert work.gpu_seconds == 0  # a CPU generator


def test_bad_options(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r"))
    assert previz("jobs", "next", path, "--gpus", "0").code == 2
    result = previz("jobs", "next", path, "--from", "2025-03-30T01:30")
    assert result.code == 2 and "does not exist in Europe/London" in result.err
    result = previz("jobs", "next", path, "--from", "2025-10-26T01:30")
    assert result.code == 2 and "2025-10-26T01:30+01:00 (the first)" in result.err
