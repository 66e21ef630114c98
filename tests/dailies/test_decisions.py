"""Decision records in the store: create-only, one object each, so reviewers deciding at once
on a local store or on S3 never lose one another's decisions; a shot's standing is their fold."""

import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from previz.dailies.decisions import (
    Action,
    Decision,
    read_decisions,
    record_decision,
    shot_reviews,
)
from previz.store import open_store

KEY = "ab" * 32
OTHER = "cd" * 32


def _decision(**fields) -> Decision:
    base = {"project": "LIGHTHOUSE", "sequence": "SQ010", "version": "v002", "shot": "SH0040",
            "reviewer": "ana"}
    return Decision(**{**base, **fields})


def test_reviewers_deciding_at_once_lose_nothing(store_uri):
    """Eight reviewers, each with their own connection to the store, twenty decisions each."""
    def review(reviewer: str) -> None:
        own = open_store(store_uri)
        for n in range(20):
            record_decision(own, _decision(reviewer=reviewer, action=Action.NOTE,
                                           note=f"{reviewer} {n}", frame=n))

    threads = [threading.Thread(target=review, args=(f"r{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = read_decisions(open_store(store_uri), "LIGHTHOUSE", "SQ010")
    assert sorted(d.note for d in found) == sorted(f"r{i} {n}" for i in range(8)
                                                   for n in range(20))


def test_a_records_key_is_never_written_twice(store):
    from previz.store import AlreadyExists

    decision = _decision(action=Action.NEEDS_WORK)
    key = record_decision(store, decision)
    tampered = decision.model_copy(update={"action": Action.APPROVE, "take": 1,
                                           "take_key": KEY})
    with pytest.raises(AlreadyExists):  # the same id and time: create-only refuses other bytes
        store.put_bytes(key, tampered.model_dump_json().encode(), create_only=True)
    assert read_decisions(store, "LIGHTHOUSE", "SQ010")[0].action is Action.NEEDS_WORK


def test_a_shots_standing_is_the_fold_of_its_decisions(tmp_path):
    start = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)

    def at(minutes: int, **fields) -> Decision:
        return _decision(at=start + timedelta(minutes=minutes), **fields)

    decisions = [
        at(0, action=Action.PICK, take=1, take_key=KEY),
        at(1, action=Action.NOTE, note="lamp flickers", frame=37, timecode="01:00:01:13"),
        at(2, action=Action.APPROVE, take=2, take_key=OTHER, version="v003"),
        at(3, shot="SH0050", action=Action.APPROVE, take=1, take_key=KEY),
        at(4, shot="SH0050", action=Action.NEEDS_WORK, note="too dark"),
    ]
    reviews = shot_reviews(reversed(decisions))  # order of reading does not matter
    assert (reviews["SH0040"].take, reviews["SH0040"].status) == (2, "approved")
    assert (reviews["SH0050"].take, reviews["SH0050"].status) == (1, "needs work")
    assert [n.note for n in reviews["SH0040"].notes] == ["lamp flickers"]
    assert shot_reviews(decisions, version="v003")["SH0040"].notes == []


@pytest.mark.parametrize(("fields", "says"), [
    ({"action": Action.APPROVE}, "names the take"),
    ({"action": Action.NOTE, "note": "  "}, "needs the note's text"),
    ({"action": Action.NOTE, "note": "x" * 4001}, "at most 4000"),
    ({"action": Action.NEEDS_WORK, "shot": "../../etc"}, "pattern"),
    ({"action": Action.NEEDS_WORK, "version": "latest"}, "pattern"),
])
def test_bad_decisions_are_refused(fields, says):
    with pytest.raises(ValueError) as refused:
        _decision(**fields)
    assert says in str(refused.value)


def test_the_decisions_command(tmp_path):
    store = open_store(str(tmp_path / "renders"))
    record_decision(store, _decision(action=Action.APPROVE, take=2, take_key=KEY))
    record_decision(store, _decision(action=Action.NOTE, note="<b>lamp</b> flickers", frame=37,
                                     timecode="01:00:01:13", reviewer="ben"))
    store.put_bytes("decisions/LIGHTHOUSE/SQ010/zz-by-hand.json", b"{not json")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "previz", "decisions",
                               str(tmp_path / "renders"), *args], capture_output=True,
                              text=True, timeout=60)

    listed = run()
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "LIGHTHOUSE SQ010: 2 decision(s)"
    assert "ana" in lines[1] and "v002 SH0040 approve take 2" in lines[1]
    assert lines[2].endswith("SH0040 note at 01:00:01:13 (frame 37): <b>lamp</b> flickers")
    assert lines[3] == "  now: SH0040 approved (take 2)"
    assert "zz-by-hand.json is not a decision" in listed.stderr
    as_json = [json.loads(line) for line in run("--json").stdout.splitlines()]
    assert [d["action"] for d in as_json] == ["approve", "note"]
    assert "no decisions yet" in run("--sequence", "SQ999").stdout
