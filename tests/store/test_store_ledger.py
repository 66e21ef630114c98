"""The run ledger: Parquet files under `ledger/date=…/`, read as one Hive-partitioned dataset."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from previz.errors import EXIT_INVALID, InvalidInput
from previz.store import (
    Attempt,
    LedgerWriter,
    Store,
    StoreError,
    append_attempts,
    format_ledger_summary,
    ledger_summary,
    open_store,
    read_ledger,
)
from previz.store.cli import add_ledger_arguments, parse_since, run_ledger_command
from previz.store.ledger import model_summary

KEY = "ab" * 32
START = datetime(2026, 11, 20, 22, 0, tzinfo=timezone.utc)


def attempts(
    run_id: str, start: datetime, count: int, node_failures: dict[str, int]
) -> list[Attempt]:
    rows = []
    failures = [node for node, n in node_failures.items() for _ in range(n)]
    for index in range(count):
        failed = index < len(failures)
        began = start + timedelta(minutes=30 * index)
        rows.append(
            Attempt(
                run_id=run_id,
                shot=f"SH{(index + 1) * 10:04d}",
                take_key=KEY,
                model="wan2.1-t2v-1.3b",
                attempt=1,
                outcome="failed" if failed else "ok",
                started_at=began,
                finished_at=began + timedelta(minutes=20),
                frames=81,
                gpu_seconds=600.0 + index,
                node=failures[index] if failed else "node-a",
                worker=f"worker-{index % 2}",
                error="CUDA out of memory" if failed else None,
            )
        )
    return rows


def test_write_and_read_back_as_a_dataset(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "renders"))
    night = attempts("RUN1", START, 8, {"node-b": 2, "node-c": 1})  # crosses midnight
    day = attempts("RUN2", START + timedelta(hours=14), 3, {})
    keys = append_attempts(store, night) + append_attempts(store, day)
    assert len(keys) == 3 and all(k.startswith("ledger/date=2026-11-2") for k in keys)
    table = pq.read_table(tmp_path / "renders" / "ledger")  # Hive partitions, as DuckDB would
    assert table.num_rows == 11
    assert sorted(set(table["date"].to_pylist())) == ["2026-11-20", "2026-11-21"]
    assert sum(table["gpu_seconds"].to_pylist()) == sum(a.gpu_seconds for a in night + day)
    assert sum(table["frames"].to_pylist()) == 81 * 11
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"


def test_read_ledger_and_summary(store: Store) -> None:
    append_attempts(store, attempts("RUN1", START, 8, {"node-b": 2, "node-c": 1}))
    with LedgerWriter(store, "RUN2") as ledger:
        for row in attempts("RUN2", START + timedelta(days=2), 4, {"node-b": 1}):
            ledger.record(row)
    table = read_ledger(store)
    assert table.num_rows == 12
    run1, run2 = ledger_summary(table)
    assert (run1.run_id, run1.attempts, run1.ok, run1.failed, run1.shots) == ("RUN1", 8, 5, 3, 8)
    assert run1.failures_by_node == {"node-b": 2, "node-c": 1}
    assert run1.gpu_hours == pytest.approx(sum(600.0 + i for i in range(8)) / 3600)
    assert (run2.attempts, run2.failed, run2.failures_by_node) == (4, 1, {"node-b": 1})
    text = format_ledger_summary([run1, run2])
    assert "RUN1" in text and "node-b 2, node-c 1" in text and "2 runs" in text
    since = read_ledger(store, since=START + timedelta(days=1))
    assert set(since["run_id"].to_pylist()) == {"RUN2"}
    assert read_ledger(store, since=START + timedelta(hours=3)).num_rows == 2 + 4


def test_errors_are_redacted_and_rows_validated(store: Store) -> None:
    leaky = attempts("RUN3", START, 1, {"node-b": 1})[0]
    leaky = Attempt(
        **{
            **leaky.__dict__,
            "error": (
                "GET https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2026&"
                "X-Amz-Signature=deadbeef failed"
            ),
        }
    )
    append_attempts(store, [leaky])
    error = read_ledger(store)["error"][0].as_py()
    assert "AKIA" not in error and "deadbeef" not in error and "X-Amz-Signature=***" in error
    good = attempts("RUN3", START, 1, {})[0].__dict__
    for change, message in [
        ({"outcome": "exploded"}, "outcome 'exploded' is not known"),
        ({"started_at": datetime(2026, 11, 20)}, "has no time zone"),
        ({"run_id": "../x"}, "run_id '../x' is not a valid id"),
        ({"take_key": "xyz"}, "not a take key"),
        ({"finished_at": START - timedelta(hours=1)}, "is before started_at"),
        ({"gpu_seconds": -1.0}, "gpu_seconds -1.0 must be a number >= 0"),
    ]:
        with pytest.raises(StoreError, match=message):
            Attempt(**{**good, **change})


def test_writer_keeps_rows_when_a_flush_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    writer = LedgerWriter(open_store(str(blocker)), "RUN4")
    writer.record(attempts("RUN4", START, 1, {})[0])
    with pytest.raises(StoreError, match="not a folder|a file"):
        writer.flush()
    writer.store = open_store(str(tmp_path / "renders"))
    assert len(writer.flush()) == 1


def test_parse_since() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2026-11-20") == datetime(2026, 11, 20, tzinfo=timezone.utc)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2026-11-20T18:00+01:00") == datetime(2026, 11, 20, 17, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput, match="--since 'yesterday' is not a date") as caught:
        parse_since("yesterday")
    assert caught.value.exit_code == EXIT_INVALID


def test_ledger_command(tmp_path: Path, capsys) -> None:
    root = tmp_path / "renders"
    append_attempts(open_store(str(root)), attempts("RUN1", START, 3, {"node-b": 1}))
    parser = argparse.ArgumentParser(prog="previz ledger")
    add_ledger_arguments(parser)
    assert run_ledger_command(parser.parse_args([str(root)])) == 0
    out = capsys.readouterr().out
    assert f"ledger of {root.as_uri()}" in out and "RUN1" in out and "node-b 1" in out
    assert run_ledger_command(parser.parse_args([str(root), "--since", "2030-01-01"])) == 0
    assert "no attempts in the ledger since 2030-01-01 00:00 UTC" in capsys.readouterr().out
    assert run_ledger_command(parser.parse_args([str(root), "--json"])) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["kind"], line.get("run_id"), line.get("model")) for line in lines] == [
        ("run", "RUN1", None), ("model", None, "wan2.1-t2v-1.3b")]


def test_costs_by_model(tmp_path: Path, capsys) -> None:
    root = tmp_path / "renders"
    wan = attempts("RUN1", START, 4, {"node-b": 1})
    ltx = [replace(row, model="ltx-video", frames=121, node="node-c", outcome="cancelled")
           if index == 0 else replace(row, model="ltx-video", frames=121, node="node-c")
           for index, row in enumerate(attempts("RUN2", START + timedelta(days=1), 3, {}))]
    append_attempts(open_store(str(root)), wan + ltx)
    by_model = {m.model: m for m in model_summary(read_ledger(open_store(str(root))))}
    assert (by_model["wan2.1-t2v-1.3b"].attempts, by_model["wan2.1-t2v-1.3b"].ok,
            by_model["wan2.1-t2v-1.3b"].failed, by_model["wan2.1-t2v-1.3b"].nodes) == (4, 3, 1, 2)
    assert by_model["wan2.1-t2v-1.3b"].seconds_per_frame == pytest.approx(20 * 60 / 81)
    assert (by_model["ltx-video"].ok, by_model["ltx-video"].cancelled) == (2, 1)
    assert by_model["ltx-video"].gpu_hours == pytest.approx((601 + 602 + 600) / 3600)
    parser = argparse.ArgumentParser(prog="previz ledger")
    add_ledger_arguments(parser)
    assert run_ledger_command(parser.parse_args([str(root)])) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["model", "attempts", "ok", "failed", "cancelled", "GPU-hours",
                                "s/frame", "nodes"]
    assert table[1].split() == ["ltx-video", "3", "2", "0", "1", "0.50", "9.917", "1"]
