"""Eight processes racing: same take -> one intact take; same sequence -> eight distinct versions.

Run against the local store, S3 (conditional writes) and S3 behind a proxy that strips the
conditions (the lock-object fallback)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import queue
from pathlib import Path

import pytest

from previz.store import (
    fetch_take_media,
    latest_version,
    open_store,
    published_versions,
    read_manifest,
    read_take_record,
)

from .store_workers import race_take_then_cut

WORKERS = 8
KEY = hashlib.sha256(b"the contested take").hexdigest()


@pytest.fixture(params=["local", "s3", "s3-no-conditional-writes"])
def race_uri(request, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "renders")
    bucket = request.getfixturevalue("bucket")
    if request.param == "s3-no-conditional-writes":
        proxy = request.getfixturevalue("make_proxy")(strip_conditions=True)
        request.getfixturevalue("aws_env").setenv("AWS_ENDPOINT_URL", proxy.url)
    return f"s3://{bucket}/previz"


@pytest.mark.slow
def test_eight_processes_race(race_uri: str, media, tmp_path: Path) -> None:
    sources = [media(f"take-{i}.mp4", 20_000 + i) for i in range(WORKERS)]
    cuts = [media(f"cut-{i}.mp4", 30_000 + i) for i in range(WORKERS)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WORKERS), context.Queue()
    processes = [
        context.Process(
            target=race_take_then_cut,
            args=(race_uri, i, KEY, str(sources[i]), str(cuts[i]), barrier, results),
        )
        for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=240) for _ in processes]
    except queue.Empty:
        pytest.fail("a worker never reported")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [trace for *_, trace in outcomes if trace]
    assert not errors, errors[0]

    store = open_store(race_uri)
    # One take: exactly one publisher created it, everyone saw the same record.
    assert sum(1 for _, created, *_ in outcomes if created) == 1
    record = read_take_record(store, KEY)
    assert {worker for _, _, worker, *_ in outcomes} == {record["worker"]}
    assert sorted(store.list(f"takes/{KEY[:2]}/{KEY}/")) == [
        f"takes/{KEY[:2]}/{KEY}/take.json",
        f"takes/{KEY[:2]}/{KEY}/take.mp4",
    ]
    fetched = fetch_take_media(store, KEY, tmp_path / "fetched.mp4").read_bytes()
    assert fetched in [path.read_bytes() for path in sources]
    # Eight cuts: eight distinct versions, each manifest naming its own publisher's media.
    versions = sorted(version for *_, version, _ in outcomes)
    assert versions == list(range(1, WORKERS + 1))
    assert published_versions(store, "LIGHTHOUSE", "SQ010") == versions
    for index, _, _, version, _ in outcomes:
        manifest = read_manifest(store, "LIGHTHOUSE", "SQ010", version)
        assert manifest["worker"] == index and manifest["edit_key"] == f"edit-{index}"
        name = f"SQ010_previz_v{version:03d}.mp4"
        digest = hashlib.sha256(cuts[index].read_bytes()).hexdigest()
        assert manifest["files"][name]["sha256"] == digest
    assert latest_version(store, "LIGHTHOUSE", "SQ010").version == WORKERS
    assert json.loads(store.get_bytes("LIGHTHOUSE/SQ010/latest.json"))["version"] == WORKERS
