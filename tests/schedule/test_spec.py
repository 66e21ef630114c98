"""Job specs are validated like storyboards: every problem at once, located, exit 2."""

import re

import pytest

from previz.errors import InvalidInput
from previz.schedule.spec import load_job

from .schedule_support import ROOT, job_text, write_job

LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def problems(err: str) -> list[tuple[int, str]]:
    found = []
    for line in err.strip().splitlines():
        match = LOCATED.match(line)
        if match:
            found.append((int(match["line"]), match["message"]))
    return found


def test_shipped_examples_validate(previz):
    result = previz("jobs", "validate", ROOT / "jobs")
    assert result.code == 0, result.err
    assert "lighthouse-sq020-nightly" in result.out and "film-weekly" in result.out
    assert result.out.count("ok  ") == 2


def test_a_job_loads_with_paths_relative_to_the_job_file(tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "renders", extra="""\
        priority: high
        gpus: 4
        notify:
          - https://hooks.example.com/previz
          - {url_env: PREVIZ_SLACK_WEBHOOK, events: [failed]}
        """))
    job = load_job(path)
    assert job.storyboards == ((tmp_path / "boards" / "board.yaml").resolve(),)
    assert job.spec.priority == "high" and job.spec.gpus == 4
    assert job.spec.on_deadline == "draft"
    assert [w.url or w.url_env for w in job.webhooks] == [
        "https://hooks.example.com/previz", "PREVIZ_SLACK_WEBHOOK"]
    assert job.webhooks[1].events == ("failed",)
    assert job.tz.key == "Europe/London" and job.deadline.hour == 7


def test_every_problem_reported_at_once_with_its_location(previz, tmp_path):
    path = write_job(tmp_path, """\
        name: Nightly Render
        storyboards: [../boards/board.yaml, ../boards/missing.yaml]
        store: renders
        cluster: ray://head:10001
        schedule:
          cron: "61 19 * * MON-FRI"
          timezone: Europe/Londn
        deadline: 7am
        priority: urgent
        on_deadline: panic
        colour: blue
        """)
    result = previz("jobs", "validate", path)
    assert result.code == 2
    found = dict(problems(result.err))
    assert all(LOCATED.match(line) for line in result.err.splitlines()[:-1]), result.err
    assert "is not a job name" in found[1]
    assert "storyboards[1]: '../boards/missing.yaml' does not exist" in found[2]
    assert "relative folder" in found[3]
    assert "Ray Client address" in found[4]
    assert "minute field '61': 61 is out of range 0-59" in found[6]
    assert "not a known time zone" in found[7] and "did you mean 'Europe/London'" in found[7]
    assert "'7am' is not a time" in found[8]
    assert "'urgent' is not allowed" in found[9] and "low, normal, high" in found[9]
    assert "'panic' is not allowed" in found[10] and "draft, fewer-steps, continue" in found[10]
    assert "unknown field 'colour'" in found[11]
    assert "1 of 1 job file(s) invalid" in result.err


def test_missing_storyboard_is_located(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r", storyboards="""
          - ../boards/board.yaml
          - ../boards/nope.yaml"""))
    result = previz("jobs", "validate", path)
    assert result.code == 2
    (line, message), = problems(result.err)
    assert line == 4
    assert "storyboards[1]: '../boards/nope.yaml' does not exist" in message
    assert "relative to the job file" in message
    assert result.err.startswith(str(path))


def test_unquoted_times_and_cron_get_a_fix(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r", deadline="19:30"))
    result = previz("jobs", "validate", path)
    assert result.code == 2
    assert 'read by YAML as the number 1170 — quote it: deadline: "19:30"' in result.err
    path.write_text(path.read_text().replace('cron: "30 19 * * MON-FRI"', "cron: */5 * * * *"))
    result = previz("jobs", "validate", path)
    assert result.code == 2 and "quote the cron expression" in result.err


def test_broken_storyboard_reported_in_its_own_file(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r"), board="project: X\nshots: 3\n")
    result = previz("jobs", "validate", path)
    assert result.code == 2
    assert "board.yaml:" in result.err and "job.yaml:" not in result.err


@pytest.mark.parametrize("field, value, message", [
    ("store", "ftp://x/y", "unknown store scheme 'ftp'"),
    ("store", "s3://Bad_Bucket/x", "not an S3 store"),
    ("cluster", "head:8265", "has no scheme — write the dashboard address as http://head:8265"),
    ("cluster", "http://user:pw@head:8265", "carries a user and password"),
])
def test_addresses_are_checked(tmp_path, field, value, message):
    text = job_text(tmp_path / "r")
    text = re.sub(rf"^{field}: .*$", f"{field}: {value}", text, flags=re.M)
    path = write_job(tmp_path, text)
    with pytest.raises(InvalidInput) as error:
        load_job(path)
    assert message in str(error.value)


def test_webhooks_need_exactly_one_target(tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r", extra="""\
        notify:
          - {events: [failed]}
          - {url: "not a url"}
          - {url_env: "lower case"}
        """))
    with pytest.raises(InvalidInput) as error:
        load_job(path)
    text = str(error.value)
    assert "give exactly one of url: or url_env:" in text
    assert "is not an http(s) URL" in text
    assert "is not an environment variable name" in text


def test_not_a_file(previz, tmp_path):
    result = previz("jobs", "validate", tmp_path / "absent.yaml")
    assert result.code == 2 and "absent.yaml:1:1: no such file" in result.err
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    result = previz("jobs", "validate", tmp_path / "list.yaml")
    assert result.code == 2 and "not a mapping" in result.err


def test_the_renders_environment_is_checked(previz, tmp_path):
    path = write_job(tmp_path, job_text(tmp_path / "r", extra="""\
        environment: {HF_HOME: /mnt/weights, RETRIES: 3}
        """))
    assert load_job(path).spec.environment == {"HF_HOME": "/mnt/weights", "RETRIES": "3"}
    for entry, message in (("{1BAD: x}", "'1BAD' is not an environment variable name"),
                           ("{PREVIZ_JOB: x}", "PREVIZ_JOB* variables are set by `previz jobs "
                                               "run` itself"),
                           ("{HF_HOME: [a, b]}", "HF_HOME: ['a', 'b'] is not a value")):
        path.write_text(job_text(tmp_path / "r", extra=f"environment: {entry}\n"))
        result = previz("jobs", "validate", path)
        assert result.code == 2
        (line, found), = problems(result.err)
        assert line == 9 and message in found, result.err
