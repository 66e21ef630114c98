"""`previz ledger STORE [--since WHEN]`: what runs cost and where they failed.

The lead wires these into `previz/cli.py`:

    ledger = commands.add_parser("ledger", help="summarise the run ledger of a store")
    add_ledger_arguments(ledger)
    ledger.set_defaults(run=run_ledger_command)
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import date, datetime, time, timedelta, timezone

from previz.errors import EXIT_OK, InvalidInput

__all__ = ["add_ledger_arguments", "run_ledger_command", "parse_since"]

_AGE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_ledger_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "store",
        metavar="STORE",
        nargs="?",
        default=None,
        help="the store: a folder, file:///path or s3://bucket/prefix (default ./renders)",
    )
    parser.add_argument(
        "--since",
        metavar="WHEN",
        default=None,
        help="only attempts started since WHEN: a UTC date (2026-11-20), a time "
        "(2026-11-20T18:00, UTC unless it has an offset) or an age (30m, 24h, 7d, 2w)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")


def run_ledger_command(args: argparse.Namespace) -> int:
    from previz.store.ledger import (
        format_ledger_summary,
        format_model_summary,
        ledger_summary,
        model_summary,
        read_ledger,
    )
    from previz.store.registry import open_store

    since = parse_since(args.since) if args.since else None
    store = open_store(args.store)
    table = read_ledger(store, since)
    rows, models = ledger_summary(table), model_summary(table)
    if getattr(args, "json", False):
        for row in rows:
            print(
                json.dumps(
                    {
                        "kind": "run",
                        **row.__dict__,
                        "started_at": row.started_at.isoformat(),
                        "finished_at": row.finished_at.isoformat(),
                    },
                    sort_keys=True,
                )
            )
        for model in models:
            print(json.dumps({"kind": "model", **model.__dict__}, sort_keys=True))
    else:
        print(f"ledger of {store.uri}")
        print(format_ledger_summary(rows, since))
        if models:
            print()
            print(format_model_summary(models))
    return EXIT_OK


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A UTC datetime from `2026-11-20`, `2026-11-20T18:00[+01:00]` or an age like `24h`."""
    value = text.strip()
    age = _AGE.fullmatch(value)
    if age:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=timezone.utc)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--since {text!r} is not a date, time or age — use 2026-11-20, 2026-11-20T18:00, "
            "24h or 7d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
