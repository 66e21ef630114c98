"""`previz jobs export`: crontab, systemd (checked by systemd's own tools when present) and
Kubernetes. The KubeRay structure is checked in tests/cluster against the shipped manifests."""

import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml

from previz.schedule.cron import parse_cron
from previz.schedule.export import systemd_calendars

from .schedule_support import SYNTHETIC_BOARD, job_text, write_job

SYSTEMD = shutil.which("systemd-analyze")
UTC = timezone.utc


def test_crontab_line(previz, tmp_path):
    folder = tmp_path / "50%"  # '%' ends a crontab command unless escaped
    path = write_job(folder, job_text(tmp_path / "r"), board=SYNTHETIC_BOARD)
    result = previz("jobs", "export", path, "--to", "crontab")
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if not line.startswith("#")]
    assert lines[:2] == ["SHELL=/bin/bash", "CRON_TZ=Europe/London"]
    schedule, command = lines[2][:len("30 19 * * 1-5")], lines[2][len("30 19 * * 1-5 "):]
    assert schedule == "30 19 * * 1-5"
    assert f"{sys.executable} -m previz jobs run " in command
    assert str(path).replace("%", "\\%") in command and "%" not in command.replace("\\%", "")
    # secrets from a file only its owner reads; the log to syslog, which the system rotates
    assert command.startswith("{ [ -r $HOME/.config/previz/test-nightly.env ] || ")
    assert command.endswith("2>&1 | logger -t previz-test-nightly; exit ${PIPESTATUS[0]}")


def test_the_crontab_line_runs_only_with_its_secrets_and_logs_to_syslog(tmp_path):
    """The line as cron's bash runs it (previz and logger stubbed, recording what they get): no
    env file, nothing runs and the reason reaches the log; with it, the render gets the token,
    and the job's exit status is the line's."""
    from previz.schedule.export import crontab_entry
    from previz.schedule.spec import load_job

    job = load_job(write_job(tmp_path, job_text(tmp_path / "r"), board=SYNTHETIC_BOARD))
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "python").write_text(
        f"#!/bin/bash\necho \"token=$RAY_AUTH_TOKEN\"\ntouch {tmp_path}/ran\nexit 3\n")
    (stubs / "logger").write_text(f"#!/bin/bash\ncat >> {tmp_path}/syslog\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    entry = crontab_entry(job, python="python").splitlines()[-1]
    command = entry[len("30 19 * * 1-5 "):]
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and not (tmp_path / "ran").exists()
    assert "test-nightly.env: missing or unreadable — create it (mode 0600)" in (
        tmp_path / "syslog").read_text()
    secrets = tmp_path / ".config" / "previz" / "test-nightly.env"
    secrets.parent.mkdir(parents=True)
    secrets.write_text("RAY_AUTH_TOKEN=s3cret\n")
    secrets.chmod(0o600)
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
    assert done.returncode == 3 and (tmp_path / "ran").exists()  # previz's status, not logger's
    assert "token=s3cret" in (tmp_path / "syslog").read_text()


def test_systemd_units(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r"), board=SYNTHETIC_BOARD)
    out = tmp_path / "units"
    result = previz("jobs", "export", path, "--to", "systemd", "--out", out)
    assert result.code == 0, result.err
    service = (out / "previz-test-nightly.service").read_text()
    timer = (out / "previz-test-nightly.timer").read_text()
    assert "Type=oneshot" in service
    assert f"ExecStart={sys.executable} -m previz jobs run {path}" in service
    # a user of its own, and a required root-only env file (a missing one fails at once)
    assert "\nUser=previz\n" in service and "\nGroup=previz\n" in service
    assert "\nEnvironmentFile=/etc/previz/test-nightly.env\n" in service
    assert "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 19:30:00 Europe/London" in timer
    assert "Persistent=true" in timer and "Unit=previz-test-nightly.service" in timer
    if SYSTEMD:
        checked = subprocess.run([SYSTEMD, "verify", str(out / "previz-test-nightly.service"),
                                  str(out / "previz-test-nightly.timer")],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0 and "Failed to parse" not in checked.stderr, \
            checked.stderr


@pytest.mark.skipif(not SYSTEMD, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("expression, zone", [
    ("30 19 * * MON-FRI", "Europe/London"),
    ("*/15 9-17 * * *", "America/New_York"),
    ("0 20 * * FRI", "America/Los_Angeles"),
    ("0 6 1,15 * *", "Asia/Tokyo"),
    ("0 12 13 * FRI", "UTC"),  # both day fields: cron ORs them
    ("@weekly", "Australia/Sydney"),
])
def test_systemd_fires_when_previz_does(expression, zone):
    """systemd's own calendar arithmetic agrees with ours (away from DST changes)."""
    schedule, tz = parse_cron(expression), ZoneInfo(zone)
    base = datetime(2025, 1, 6, 12, tzinfo=UTC)
    ours = [t.astimezone(UTC) for t in schedule.fire_times(base, tz, 6)]
    theirs: set[datetime] = set()
    for calendar in systemd_calendars(schedule, zone):
        shown = subprocess.run(
            [SYSTEMD, "calendar", "--iterations=6", "--base-time=2025-01-06 12:00 UTC", calendar],
            capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "UTC"})
        assert shown.returncode == 0, shown.stderr
        for stamp in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", shown.stdout):
            theirs.add(datetime.fromisoformat(stamp).replace(tzinfo=UTC))
    assert sorted(theirs)[:6] == ours


def test_systemd_timer_warns_about_a_schedule_inside_a_dst_gap(tmp_path):
    from previz.schedule.export import systemd_units
    from previz.schedule.spec import load_job

    job = load_job(write_job(tmp_path, job_text(tmp_path / "r", cron="30 1 * * SUN"),
                             board=SYNTHETIC_BOARD))
    timer = systemd_units(job)["previz-test-nightly.timer"]
    assert re.search(r"# Note: on \d{4}-03-\d\d the clocks skip 01:00-02:00 in Europe/London; "
                     r"systemd skips this job's 01:30", timer)


def test_kubernetes_raycronjob(previz, tmp_path):
    path = write_job(tmp_path, job_text("s3://studio/film", extra="""\
        priority: low
        notify: [{url_env: PREVIZ_SLACK_WEBHOOK}]
        """), board=SYNTHETIC_BOARD)
    result = previz("jobs", "export", path, "--to", "kubernetes", "--image", "reg/previz:1",
                    "--namespace", "studio")
    assert result.code == 0, result.err
    manifest = yaml.safe_load(result.out)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCronJob")
    assert manifest["metadata"] == {**manifest["metadata"], "name": "previz-test-nightly",
                                    "namespace": "studio"}
    spec = manifest["spec"]
    assert (spec["schedule"], spec["timeZone"]) == ("30 19 * * 1-5", "Europe/London")
    template = spec["jobTemplate"]
    assert template["entrypoint"] == ("cd /mnt/previz/project/boards || exit 1; previz render "
                                      "board.yaml --store s3://studio/film --json --deadline "
                                      "'07:00 Europe/London'")
    env = yaml.safe_load(template["runtimeEnvYAML"])["env_vars"]
    assert env["PREVIZ_JOB"] == "test-nightly"
    assert env["PREVIZ_JOB_WEBHOOKS"] == '[{"url_env": "PREVIZ_SLACK_WEBHOOK"}]'
    cluster = template["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [
        group["template"]["spec"] for group in cluster["workerGroupSpecs"]]
    assert {pod["priorityClassName"] for pod in pods} == {"previz-low"}
    assert {pod["containers"][0]["image"] for pod in pods} == {"reg/previz:1"}


def test_kubernetes_cronjob_calls_previz_jobs_run(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r"), board=SYNTHETIC_BOARD)
    result = previz("jobs", "export", path, "--to", "kubernetes-cronjob",
                    "--address", "http://previz-head-svc.previz.svc:8265")
    assert result.code == 0, result.err
    cronjob = yaml.safe_load(result.out)
    assert (cronjob["apiVersion"], cronjob["kind"]) == ("batch/v1", "CronJob")
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"]) == ("30 19 * * 1-5", "Europe/London")
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container, = pod["containers"]
    assert container["command"] == ["previz", "jobs", "run",
                                    "/mnt/previz/project/jobs/job.yaml",
                                    "--address", "http://previz-head-svc.previz.svc:8265"]
    token, = container["env"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "previz-ray-token",
                                                  "key": "auth_token"}


def test_project_root_must_hold_the_job(previz, tmp_path):
    path = write_job(tmp_path / "a", job_text(tmp_path / "r"), board=SYNTHETIC_BOARD)
    (tmp_path / "b").mkdir()
    result = previz("jobs", "export", path, "--to", "kubernetes-cronjob",
                    "--project-root", tmp_path / "b")
    assert result.code == 2 and "outside the project folder" in result.err


def test_options_that_do_not_apply_are_refused(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r"), board=SYNTHETIC_BOARD)
    result = previz("jobs", "export", path, "--to", "crontab", "--image", "x")
    assert result.code == 2 and "--image: only for Kubernetes exports" in result.err
    result = previz("jobs", "export", path, "--to", "kubernetes", "--address", "http://h:8265")
    assert result.code == 2 and "use it with --to kubernetes-cronjob" in result.err


def test_render_entrypoint_passes_the_deadline(tmp_path):
    import previz.schedule.run as run
    from previz.schedule.spec import load_job

    job = load_job(write_job(tmp_path, job_text("s3://bkt/p"), board=SYNTHETIC_BOARD))
    deadline = job.deadline_for(datetime(2025, 1, 13, 19, 30, tzinfo=UTC))
    assert run.render_entrypoint(job, deadline) == (
        "previz render board.yaml --store s3://bkt/p --json --deadline 2025-01-14T07:00+00:00")
    assert "--deadline" not in run.render_entrypoint(job)  # RayCronJob: no slot, no deadline
    fewer = load_job(write_job(tmp_path, job_text("s3://bkt/p", extra="on_deadline: fewer-steps\n"),
                               board=SYNTHETIC_BOARD))
    assert run.render_entrypoint(fewer, deadline).endswith(
        "--deadline 2025-01-14T07:00+00:00 --deadline-fallback fewer-steps")
    late = load_job(write_job(tmp_path, job_text("s3://bkt/p", extra="on_deadline: continue\n"),
                              board=SYNTHETIC_BOARD))
    assert "--deadline" not in run.render_entrypoint(late, deadline)
