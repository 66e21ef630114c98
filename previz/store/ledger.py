"""The run ledger: one row per task attempt, appended as Parquet files under the store.

    <root>/ledger/date=YYYY-MM-DD/<run_id>-<uuid>.parquet

Appending adds files (one per flush and day), never rewrites one, so concurrent writers cannot
collide. The Hive-style `date=` folders let DuckDB, Spark or pandas read the whole ledger as one
partitioned dataset (`pyarrow.parquet.read_table(root / "ledger")`).
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import Enum
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from previz.store.base import Store
from previz.store.errors import StoreError, naming_store
from previz.store.keys import LEDGER_PREFIX, check_id, check_take_key, ledger_object
from previz.store.redact import redact

__all__ = [
    "Attempt",
    "Outcome",
    "OUTCOMES",
    "FAILED_OUTCOMES",
    "LEDGER_SCHEMA",
    "LedgerWriter",
    "append_attempts",
    "read_ledger",
    "RunSummary",
    "ledger_summary",
    "format_ledger_summary",
    "ModelSummary",
    "model_summary",
    "format_model_summary",
]



class Outcome(str, Enum):
    """How one attempt ended."""

    OK = "ok"  # its take (or segment) is published
    FAILED = "failed"  # counted against the shot's attempts
    CANCELLED = "cancelled"  # the render stopped (Ctrl-C, deadline, a failing store) first
    TIMEOUT = "timeout"
    LOST = "lost"  # its node went away: recorded, not counted against the shot


OUTCOMES = tuple(outcome.value for outcome in Outcome)
FAILED_OUTCOMES = (Outcome.FAILED.value, Outcome.TIMEOUT.value, Outcome.LOST.value)
_UTC = pa.timestamp("us", tz="UTC")
LEDGER_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("shot", pa.string(), nullable=False),
        pa.field("take_key", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("frames", pa.int32(), nullable=False),
        pa.field("gpu_seconds", pa.float64(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("worker", pa.string(), nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("started_at", _UTC, nullable=False),
        pa.field("finished_at", _UTC, nullable=False),
    ]
)


@dataclass(frozen=True)
class Attempt:
    """One try at rendering one take. Times are timezone-aware (stored as UTC)."""

    run_id: str
    shot: str
    take_key: str
    model: str
    attempt: int
    outcome: str
    started_at: datetime
    finished_at: datetime
    frames: int = 0
    gpu_seconds: float = 0.0
    node: str = ""
    worker: str = ""
    error: str | None = None

    def __post_init__(self) -> None:
        check_id("ledger run_id", self.run_id)
        check_id("ledger shot", self.shot)
        check_take_key(self.take_key)
        if self.outcome not in OUTCOMES:
            raise StoreError(
                f"ledger outcome {self.outcome!r} is not known — use one of {', '.join(OUTCOMES)}"
            )
        for name in ("started_at", "finished_at"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise StoreError(
                    f"ledger {name} {value!r} has no time zone — pass an aware datetime "
                    "(datetime.now(timezone.utc))"
                )
        if self.finished_at < self.started_at:
            raise StoreError(
                f"ledger finished_at {self.finished_at.isoformat()} is before started_at "
                f"{self.started_at.isoformat()} — check the clock source"
            )
        for name in ("attempt", "frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StoreError(f"ledger {name} {value!r} must be a whole number >= 0")
        if not isinstance(self.gpu_seconds, (int, float)) or not 0 <= self.gpu_seconds < float(
            "inf"
        ):
            raise StoreError(f"ledger gpu_seconds {self.gpu_seconds!r} must be a number >= 0")

    def row(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "shot": self.shot,
            "take_key": self.take_key,
            "model": redact(self.model),
            "frames": self.frames,
            "gpu_seconds": float(self.gpu_seconds),
            "node": redact(self.node),
            "worker": redact(self.worker),
            "attempt": self.attempt,
            "outcome": Outcome(self.outcome).value,
            # Errors often quote URLs and service replies; keep credentials out of the ledger.
            "error": None if self.error is None else redact(self.error),
            "started_at": self.started_at.astimezone(timezone.utc),
            "finished_at": self.finished_at.astimezone(timezone.utc),
        }


@naming_store
def append_attempts(store: Store, attempts: Iterable[Attempt]) -> list[str]:
    """Write attempts as new Parquet files, one per run and UTC day; returns their keys."""
    groups: dict[tuple[str, date], list[Attempt]] = {}
    for attempt in attempts:
        if not isinstance(attempt, Attempt):
            raise StoreError(
                f"{store.uri}: ledger rows must be Attempt, not {type(attempt).__name__}"
            )
        day = attempt.started_at.astimezone(timezone.utc).date()
        groups.setdefault((attempt.run_id, day), []).append(attempt)
    written = []
    for (run_id, day), rows in sorted(groups.items()):
        table = pa.Table.from_pylist([row.row() for row in rows], schema=LEDGER_SCHEMA)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        key = ledger_object(day, run_id, uuid.uuid4().hex)
        store.put_bytes(key, buffer.getvalue(), create_only=True)
        written.append(key)
    return written


@dataclass
class LedgerWriter:
    """Collects a run's attempts and appends them on `flush` (and on leaving a `with` block)."""

    store: Store
    run_id: str
    _pending: list[Attempt] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        check_id("ledger run_id", self.run_id)

    @property
    def pending(self) -> int:
        """Attempts recorded and not yet written."""
        return len(self._pending)

    def record(self, attempt: Attempt) -> None:
        if attempt.run_id != self.run_id:
            raise StoreError(
                f"{self.store.uri}: attempt of run {attempt.run_id!r} given to the ledger of run "
                f"{self.run_id!r} — use one LedgerWriter per run"
            )
        with self._lock:
            self._pending.append(attempt)

    def flush(self) -> list[str]:
        with self._lock:
            pending, self._pending = self._pending, []
        try:
            return append_attempts(self.store, pending) if pending else []
        except BaseException:
            with self._lock:
                self._pending[:0] = pending  # keep them for the next flush
            raise

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.flush()


@naming_store
def read_ledger(store: Store, since: datetime | None = None) -> pa.Table:
    """Every attempt (started at or after `since`, if given) as one table in `LEDGER_SCHEMA`."""
    if since is not None and since.tzinfo is None:
        raise StoreError(f"ledger since {since!r} has no time zone — pass an aware datetime")
    since_utc = since.astimezone(timezone.utc) if since else None
    tables = []
    for key in store.list(LEDGER_PREFIX):
        partition = key[len(LEDGER_PREFIX) :].partition("/")[0]
        day = _partition_day(partition)
        if day is None or not key.endswith(".parquet"):
            continue
        if since_utc is not None and day < since_utc.date():
            continue
        try:
            table = pq.read_table(pa.BufferReader(store.get_bytes(key)), schema=LEDGER_SCHEMA)
        except (pa.ArrowException, OSError) as error:
            raise StoreError(
                f"{store.uri}: ledger file {key} is unreadable ({redact(str(error))}) — move it "
                "aside; the ledger only ever adds files"
            ) from None
        tables.append(table)
    table = pa.concat_tables(tables) if tables else LEDGER_SCHEMA.empty_table()
    if since_utc is not None:
        import pyarrow.compute as pc

        table = table.filter(pc.greater_equal(table["started_at"], pa.scalar(since_utc, _UTC)))
    return table


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started_at: datetime
    finished_at: datetime
    attempts: int
    ok: int
    failed: int
    cancelled: int
    shots: int
    gpu_hours: float
    failures_by_node: dict[str, int]


def ledger_summary(table: pa.Table) -> list[RunSummary]:
    """Per run: attempts, outcomes, GPU-hours and failures per node; oldest run first."""
    runs: dict[str, dict] = {}
    for row in table.select(
        ["run_id", "shot", "outcome", "gpu_seconds", "node", "started_at", "finished_at"]
    ).to_pylist():
        run = runs.setdefault(
            row["run_id"],
            {
                "started": row["started_at"],
                "finished": row["finished_at"],
                "attempts": 0,
                "ok": 0,
                "failed": 0,
                "cancelled": 0,
                "gpu": 0.0,
                "shots": set(),
                "nodes": {},
            },
        )
        run["started"] = min(run["started"], row["started_at"])
        run["finished"] = max(run["finished"], row["finished_at"])
        run["attempts"] += 1
        run["gpu"] += row["gpu_seconds"]
        run["shots"].add(row["shot"])
        if row["outcome"] == "ok":
            run["ok"] += 1
        elif row["outcome"] == "cancelled":
            run["cancelled"] += 1
        else:
            run["failed"] += 1
            node = row["node"] or "?"
            run["nodes"][node] = run["nodes"].get(node, 0) + 1
    summaries = [
        RunSummary(
            run_id=run_id,
            started_at=run["started"],
            finished_at=run["finished"],
            attempts=run["attempts"],
            ok=run["ok"],
            failed=run["failed"],
            cancelled=run["cancelled"],
            shots=len(run["shots"]),
            gpu_hours=run["gpu"] / 3600,
            failures_by_node=dict(sorted(run["nodes"].items())),
        )
        for run_id, run in runs.items()
    ]
    return sorted(summaries, key=lambda summary: (summary.started_at, summary.run_id))


def format_ledger_summary(rows: list[RunSummary], since: datetime | None = None) -> str:
    """A plain-text table of `ledger_summary` rows, with a total line."""
    scope = f" since {since.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if since else ""
    if not rows:
        return f"no attempts in the ledger{scope}"
    header = (
        "run",
        "started (UTC)",
        "attempts",
        "ok",
        "failed",
        "cancelled",
        "GPU-hours",
        "failures by node",
    )
    lines = [header]
    for row in rows:
        nodes = ", ".join(f"{node} {count}" for node, count in row.failures_by_node.items())
        lines.append(
            (
                row.run_id,
                f"{row.started_at:%Y-%m-%d %H:%M}",
                str(row.attempts),
                str(row.ok),
                str(row.failed),
                str(row.cancelled),
                f"{row.gpu_hours:.2f}",
                nodes or "-",
            )
        )
    lines.append(
        (
            f"{len(rows)} run{'s' if len(rows) != 1 else ''}{scope}",
            "",
            str(sum(r.attempts for r in rows)),
            str(sum(r.ok for r in rows)),
            str(sum(r.failed for r in rows)),
            str(sum(r.cancelled for r in rows)),
            f"{sum(r.gpu_hours for r in rows):.2f}",
            "",
        )
    )
    return _text_table(lines, numeric={2, 3, 4, 5, 6})


@dataclass(frozen=True)
class ModelSummary:
    model: str
    attempts: int
    ok: int
    failed: int  # failed, timed out or lost
    cancelled: int
    gpu_hours: float
    seconds_per_frame: float | None  # mean over the attempts that published
    nodes: int  # how many nodes ran it


def model_summary(table: pa.Table) -> list[ModelSummary]:
    """Per model: attempts, outcomes, GPU-hours and the seconds a published frame took."""
    models: dict[str, dict] = {}
    for row in table.select(
        ["model", "outcome", "gpu_seconds", "node", "frames", "started_at", "finished_at"]
    ).to_pylist():
        model = models.setdefault(row["model"], {"attempts": 0, "ok": 0, "failed": 0,
                                                 "cancelled": 0, "gpu": 0.0, "seconds": 0.0,
                                                 "frames": 0, "nodes": set()})
        model["attempts"] += 1
        model["gpu"] += row["gpu_seconds"]
        model["nodes"].add(row["node"] or "?")
        if row["outcome"] == Outcome.OK.value:
            model["ok"] += 1
            model["seconds"] += (row["finished_at"] - row["started_at"]).total_seconds()
            model["frames"] += row["frames"]
        elif row["outcome"] == Outcome.CANCELLED.value:
            model["cancelled"] += 1
        else:
            model["failed"] += 1
    return [
        ModelSummary(
            model=name, attempts=m["attempts"], ok=m["ok"], failed=m["failed"],
            cancelled=m["cancelled"], gpu_hours=m["gpu"] / 3600,
            seconds_per_frame=m["seconds"] / m["frames"] if m["frames"] else None,
            nodes=len(m["nodes"]),
        )
        for name, m in sorted(models.items())
    ]


def format_model_summary(rows: list[ModelSummary]) -> str:
    """A plain-text table of `model_summary` rows."""
    lines = [("model", "attempts", "ok", "failed", "cancelled", "GPU-hours", "s/frame",
              "nodes")]
    for row in rows:
        lines.append((row.model, str(row.attempts), str(row.ok), str(row.failed),
                      str(row.cancelled), f"{row.gpu_hours:.2f}",
                      "-" if row.seconds_per_frame is None else f"{row.seconds_per_frame:.3f}",
                      str(row.nodes)))
    return _text_table(lines, numeric=set(range(1, 8)))


def _text_table(lines: list[tuple[str, ...]], numeric: set[int]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = []
    for line in lines:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        text.append("  ".join(cells).rstrip())
    return "\n".join(text)


def _partition_day(partition: str) -> date | None:
    if not partition.startswith("date="):
        return None
    try:
        return date.fromisoformat(partition[len("date=") :])
    except ValueError:
        return None
