"""The `previz` command as a user runs it: real subprocesses, exit codes, output."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
STORYBOARDS = ROOT / "storyboards"


def previz(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "previz", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_validate_every_shipped_storyboard():
    result = previz("validate", "storyboards/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok  ") == len(list(STORYBOARDS.glob("*.yaml")))
    assert "market_chase_sq030.yaml  45 shots" in result.stdout


def test_invalid_storyboard_exits_2_with_located_messages_only(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        project: P
        sequence: S
        shots:
          - {id: SH0010, duration: 2s, prompt: x, modle: draft}
          - {id: SH0010, duration: 0s, prompt: y}
    """))
    result = previz("validate", str(bad), str(STORYBOARDS / "demo.yaml"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"{bad}:4:") and "did you mean 'model'" in lines[0]
    assert lines[1].startswith(f"{bad}:5:") and "not positive" in lines[1]
    assert lines[-1] == "1 of 2 storyboard(s) invalid"
    assert "Traceback" not in result.stderr
    assert "ok  " in result.stdout  # the valid one is still checked and reported


def test_plan_json_has_the_documented_fields():
    result = previz("plan", "storyboards/demo.yaml", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    shot = plan["shots"][0]
    for field in ("frames", "record_in", "record_out", "model", "takes"):
        assert field in shot
    assert {"key", "seed"} <= set(shot["takes"][0])
    assert len(shot["takes"][0]["key"]) == 64


def test_plan_table_is_readable():
    result = previz("plan", "storyboards/lighthouse_sq020.yaml")
    assert result.returncode == 0, result.stderr
    assert "SH0030" in result.stdout and "81+81+33 @ 16" in result.stdout
    assert "01:00:07:00" in result.stdout


def test_missing_file_exits_2():
    result = previz("plan", "no/such/board.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith("no/such/board.yaml:1:1: no such file")


def test_schema_checks_storyboards_and_matches_the_shipped_copy():
    result = previz("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    shipped = json.loads((STORYBOARDS / "storyboard.schema.json").read_text())
    assert schema == shipped, "run `previz schema > storyboards/storyboard.schema.json`"
    for path in STORYBOARDS.glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    broken = yaml.safe_load((STORYBOARDS / "demo.yaml").read_text())
    broken["shots"][0]["camera"]["move"] = "dolly"
    try:
        jsonschema.validate(broken, schema)
    except jsonschema.ValidationError as error:
        assert "dolly" in error.message
    else:
        raise AssertionError("the schema accepted an unknown camera move")


def test_models_lists_the_catalog():
    result = previz("models", "--json")
    catalog = json.loads(result.stdout)["models"]
    for name in ("draft", "wan2.1-t2v-1.3b", "wan2.1-vace-14b", "ltx-video", "svd-xt"):
        assert name in catalog
    wan = catalog["wan2.1-t2v-1.3b"]
    assert (wan["pipeline"], wan["fps"], wan["frames"]) == ("WanPipeline", 16.0, "4k+1, at most 81")
    assert abs(wan["cost_per_frame_step"] - 261 / (81 * 50)) < 1e-9  # the estimates' rate
    table = subprocess.run([sys.executable, "-m", "previz", "models"], cwd=ROOT, text=True,
                           capture_output=True, env={**os.environ, "COLUMNS": "250"}).stdout
    row = next(line for line in table.splitlines() if "wan2.1-t2v-1.3b" in line).split("│")
    assert [cell.strip() for cell in row[1:-1]] == [
        "wan2.1-t2v-1.3b", "wan2.1-1.3b", "WanPipeline", "source_video, text", "", "16",
        "4k+1, at most 81",
        "832x480", "1: 12 · 2: 10 · 4: 10", "24 GB x1", "0.0644", "50"]
    assert catalog["draft"]["makes_sound"] and not wan["makes_sound"]
    # 12 heads split 1, 2 or 4 ways; the 14B needs four 48 GB cards, or one of 80 GB.
    assert wan["gang_sizes"] == [1, 2, 4]
    assert catalog["wan2.1-t2v-14b"]["smallest_gang_by_card_gb"] == {
        "24": None, "48": 4, "80": 1, "141": 1}


def test_plan_and_validate_import_neither_torch_nor_ray():
    code = textwrap.dedent(f"""
        import sys
        from previz.cli import main
        assert main(["validate", {str(STORYBOARDS)!r}]) == 0
        assert main(["plan", {str(STORYBOARDS / 'lighthouse_sq020.yaml')!r}, "--json"]) == 0
        heavy = sorted(m for m in ("torch", "ray", "diffusers", "transformers") if m in sys.modules)
        print("HEAVY=" + ",".join(heavy), file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr


def test_render_refuses_a_deadline_that_is_not_a_time(tmp_path):
    result = previz("render", "storyboards/demo.yaml", "--store", str(tmp_path / "r"),
                    "--deadline", "tomorrow morning")
    assert result.returncode == 2
    assert result.stderr.strip() == ("--deadline: 'tomorrow morning' is not a time — write "
                                     "07:00 (local) or 2026-11-22T07:00+00:00 (with its offset)")
    assert not (tmp_path / "r").exists()


def test_a_deadline_in_a_named_zone_is_the_next_such_time_there():
    """As a RayCronJob slot passes it: the job's local deadline and its zone, whatever zone
    the pod itself runs in."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from previz.cli import _deadline_moment

    for zone in ("Europe/London", "America/Los_Angeles", "Asia/Tokyo"):
        moment = datetime.fromtimestamp(_deadline_moment(f"07:00 {zone}"), ZoneInfo(zone))
        assert (moment.hour, moment.minute) == (7, 0)
        assert 0 < moment.timestamp() - datetime.now().timestamp() <= 24 * 3600
    monday = datetime.fromtimestamp(_deadline_moment("Mon 07:00 Asia/Tokyo"), ZoneInfo("Asia/Tokyo"))
    assert (monday.weekday(), monday.hour) == (0, 7)
    result = previz("render", "storyboards/demo.yaml", "--deadline", "07:00 Mars/Olympus")
    assert result.returncode == 2
    assert "--deadline: 'Mars/Olympus' is not a time zone" in result.stderr


def test_render_against_an_unreachable_cluster_fails_fast_in_one_line(tmp_path):
    import socket

    with socket.socket() as closed:  # a port nothing listens on once this block ends
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = previz("render", "storyboards/demo.yaml", "--store", str(tmp_path / "r"),
                    "--address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--address 127.0.0.1:{port}: no Ray cluster answers there" in \
        lines[0] and "leave --address out" in lines[0]
