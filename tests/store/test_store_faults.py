"""S3 through a faulty network: publishes (large media in multipart) and downloads complete with
intact content, and nothing half-written ever becomes visible. A store that fills up or turns read-only mid-publish fails cleanly."""

from __future__ import annotations

import hashlib
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from previz.store import (
    StoreError,
    fetch_take_media,
    has_take,
    latest_version,
    open_store,
    publish_cut,
    publish_take,
    published_versions,
    read_manifest,
    read_take_record,
)

from .store_fault_proxy import RANDOM_FAULTS

TAKES = 100  # media + json each: 200 objects
MiB = 1024 * 1024


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def key_of(index: int) -> str:
    return hashlib.sha256(f"take {index}".encode()).hexdigest()


class Observer(threading.Thread):
    """Watches the store through a clean connection; every take or version it can see must be
    whole: the media matches the json, every file matches the manifest."""

    def __init__(self, store, sources: dict[str, bytes], scratch: Path):
        super().__init__(daemon=True)
        self.store, self.sources, self.scratch = store, sources, scratch
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.seen_takes: set[str] = set()
        self.seen_versions: set[int] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.look()
            except Exception as error:  # a crash must fail the test, not end the watch quietly
                self.problems.append(f"observer failed: {error!r}")
                return
            self.stop.wait(0.05)

    def look(self) -> None:
        for key in set(self.sources) - self.seen_takes:
            if has_take(self.store, key):
                data = fetch_take_media(self.store, key, self.scratch / key).read_bytes()
                if data != self.sources[key]:
                    self.problems.append(f"take {key} visible with wrong media")
                self.seen_takes.add(key)
        published = set(published_versions(self.store, "LIGHTHOUSE", "SQ010"))
        for number in published - self.seen_versions:
            manifest = read_manifest(self.store, "LIGHTHOUSE", "SQ010", number)
            for name, entry in manifest["files"].items():
                info = self.store.stat(f"LIGHTHOUSE/SQ010/v{number:03d}/{name}")
                if info is None or info.sha256 != entry["sha256"]:
                    self.problems.append(f"v{number:03d} visible without intact {name}")
            self.seen_versions.add(number)


@pytest.mark.slow
def test_publish_through_a_flaky_network(open_s3, make_proxy, media, tmp_path: Path) -> None:
    clean = open_s3()
    proxy = make_proxy(rate=0.10, seed=20261122, slow_s=0.2)
    flaky = open_s3(proxy.url, AWS_MAX_ATTEMPTS="8")
    rng = random.Random(1)
    paths = {key_of(i): media(f"take-{i}.mp4", rng.randint(2_000, 40_000)) for i in range(TAKES)}
    sources = {key: path.read_bytes() for key, path in paths.items()}
    (tmp_path / "seen").mkdir()
    observer = Observer(clean, sources, tmp_path / "seen")
    observer.start()

    def publish(key: str) -> bool:
        return publish_take(flaky, key, paths[key], {"seed": int(key[:6], 16)}).created

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            created = list(pool.map(publish, paths))
        cut_media = media("cut.mp4", 60_000)
        for edit in range(4):
            publish_cut(
                flaky,
                "LIGHTHOUSE",
                "SQ010",
                {"SQ010_previz_{version}.mp4": cut_media},
                {"pass": edit},
                f"edit-{edit}",
            )
    finally:
        observer.stop.set()
        observer.join()

    assert all(created)
    assert sum(proxy.injected.values()) >= 20, proxy.injected
    assert set(RANDOM_FAULTS) <= set(proxy.injected), proxy.injected
    assert not observer.problems, observer.problems

    # Everything reads back intact through the same faulty network (truncated replies included).
    published = len(proxy.faults)

    def fetch(key: str) -> tuple[str, str]:
        record = read_take_record(flaky, key)
        fetched = fetch_take_media(flaky, key, tmp_path / "back" / f"{key}.mp4")
        return record["media"]["sha256"], sha256_of(fetched)

    with ThreadPoolExecutor(max_workers=8) as pool:
        fetched = dict(zip(sources, pool.map(fetch, sources), strict=True))
    for key, data in sources.items():
        digest = hashlib.sha256(data).hexdigest()
        assert fetched[key] == (digest, digest), key
    for number in range(1, 5):
        manifest = read_manifest(flaky, "LIGHTHOUSE", "SQ010", number)
        assert list(manifest["files"]) == [f"SQ010_previz_v{number:03d}.mp4"]
        for name, entry in manifest["files"].items():
            copy = flaky.get_file(f"LIGHTHOUSE/SQ010/v{number:03d}/{name}", tmp_path / name)
            assert sha256_of(copy) == entry["sha256"] == sha256_of(cut_media), name
    on_reads = {fault for fault, method, _ in proxy.faults[published:] if method == "GET"}
    assert set(RANDOM_FAULTS) <= on_reads, proxy.faults[published:]
    assert proxy.truncated["GET"] >= 3, proxy.truncated

    # Exactly once, with nothing extra left behind.
    assert len(clean.list("takes/")) == 2 * TAKES
    assert published_versions(clean, "LIGHTHOUSE", "SQ010") == [1, 2, 3, 4]
    assert latest_version(clean, "LIGHTHOUSE", "SQ010").version == 4
    assert clean.list("") == sorted(clean.list("takes/") + clean.list("LIGHTHOUSE/"))


class Forced:
    """A proxy rule: each step `[fault, method, path fragment, times]` answers the first `times`
    matching requests with `fault` (earlier steps first); other requests are left to chance."""

    def __init__(self, *steps: tuple[str, str, str, int]):
        self.steps = [list(step) for step in steps]

    def __call__(self, method: str, path: str) -> str | None:
        for step in self.steps:
            fault, wanted, fragment, left = step
            if left and method == wanted and fragment in path:
                step[3] -= 1
                return fault
        return None


@pytest.mark.slow
def test_large_take_goes_multipart_through_a_flaky_network(
    open_s3, make_proxy, media, tmp_path: Path
) -> None:
    big, stuck = key_of(1000), key_of(1001)
    source = media("big.mp4", 11 * MiB + 4321)  # three 5 MiB parts, the last one short
    digest = sha256_of(source)
    forced = Forced(
        ("503", "PUT", "partNumber=1", 1),
        ("reset_after", "PUT", "partNumber=2", 1),  # stored, but the reply is lost: sent again
        ("reset_after", "POST", f"{big}/take.mp4?uploadId=", 1),  # completed, reply lost
        ("507", "PUT", f"{stuck}/take.json", 1),  # this take's json does not land: store full
        ("truncate", "GET", "/take.json", 1),
        ("truncate", "GET", "/take.mp4", 2),
        ("corrupt", "GET", "/take.mp4", 1),  # whole length, wrong bytes: the sha256 catches it
    )
    clean = open_s3()
    proxy = make_proxy(rate=0.15, seed=7, slow_s=0.2, rule=forced)
    flaky = open_s3(proxy.url, AWS_MAX_ATTEMPTS="8", PREVIZ_S3_MULTIPART_CHUNK_MB="5")
    (tmp_path / "seen").mkdir()
    observer = Observer(clean, dict.fromkeys((big, stuck), source.read_bytes()), tmp_path / "seen")
    observer.start()
    try:
        assert publish_take(flaky, big, source, {"seed": 1}).created
        with pytest.raises(StoreError, match="the store is full"):
            publish_take(flaky, stuck, source, {"seed": 2})
    finally:
        observer.stop.set()
        observer.join()

    assert not observer.problems, observer.problems
    assert observer.seen_takes <= {big}
    # Sent in parts no larger than the chunk (bounded memory), stored as one multipart object.
    assert 5 * MiB <= proxy.largest_body <= 5 * MiB + 64 * 1024
    media_key = f"takes/{big[:2]}/{big}/take.mp4"
    assert clean.stat(media_key).tag.endswith('-3"')
    # A take whose json never landed does not exist, though its media is stored.
    assert not has_take(clean, stuck) and not has_take(flaky, stuck)
    assert clean.list(f"takes/{stuck[:2]}/{stuck}/") == [f"takes/{stuck[:2]}/{stuck}/take.mp4"]

    # Fetched back through the faulty network: truncated twice, corrupted once, still intact.
    back = fetch_take_media(flaky, big, tmp_path / "back" / "big.mp4")
    assert sha256_of(back) == digest == read_take_record(flaky, big)["media"]["sha256"]
    assert all(step[3] == 0 for step in forced.steps), forced.steps
    assert proxy.truncated["GET"] >= 3, proxy.truncated
    assert {"reset_after", "503", "507", "truncate", "corrupt"} <= set(proxy.injected)

    # Once the service recovers, the stuck take publishes by adopting the media already stored.
    forced.steps = []
    assert publish_take(flaky, stuck, source, {"seed": 2}).created
    back = fetch_take_media(flaky, stuck, tmp_path / "back" / "stuck.mp4")
    assert sha256_of(back) == digest


class Trip:
    """A proxy rule: once armed, answer matching requests with `fault` (after `skip` of them)."""

    def __init__(
        self, fault: str, methods: tuple[str, ...] = ("PUT",), suffix: str = "", skip: int = 0
    ):
        self.fault, self.methods, self.suffix, self.skip = fault, methods, suffix, skip
        self.armed = False

    def __call__(self, method: str, path: str) -> str | None:
        if (
            not self.armed
            or method not in self.methods
            or not path.split("?")[0].endswith(self.suffix)
        ):
            return None
        if self.skip > 0:
            self.skip -= 1
            return None
        return self.fault


@pytest.mark.parametrize(
    ("fault", "methods", "message"),
    [
        ("507", ("PUT",), "the store is full, cannot write"),
        ("403", ("PUT", "DELETE"), "access denied to write"),
    ],
)
def test_store_fails_mid_publish(
    open_s3, make_proxy, media, tmp_path, fault, methods, message
) -> None:
    trip = Trip(fault, methods)
    proxy = make_proxy(rule=trip)
    store = open_s3(proxy.url)
    assert store.conditional_writes  # probe before the trouble starts
    done = [key_of(i) for i in range(3)]
    for key in done:
        publish_take(store, key, media(f"{key}.mp4"), {})
    cut = media("cut.mp4", 10_000)
    files = {"SQ010_previz_{version}.mp4": cut, "SQ010_previz_{version}.otio": media("cut.otio")}
    publish_cut(store, "LIGHTHOUSE", "SQ010", files, {}, "edit-1")

    # A take whose json cannot be written stays invisible.
    trip.armed, trip.suffix = True, "take.json"
    with pytest.raises(StoreError, match=message) as caught:
        publish_take(store, key_of(9), media("late.mp4"), {})
    assert str(caught.value).startswith(store.uri) and "\n" not in str(caught.value)
    # A cut that fails after its claim and first file is not published.
    trip.suffix, trip.skip = "", 2
    with pytest.raises(StoreError, match=message):
        publish_cut(store, "LIGHTHOUSE", "SQ010", files, {}, "edit-2")
    trip.armed = False

    clean = open_s3()
    assert not has_take(clean, key_of(9))
    for key in done:
        assert (
            fetch_take_media(clean, key, tmp_path / "x.mp4").read_bytes()
            == (tmp_path / "src" / f"{key}.mp4").read_bytes()
        )
    assert published_versions(clean, "LIGHTHOUSE", "SQ010") == [1]
    assert latest_version(clean, "LIGHTHOUSE", "SQ010").version == 1
    leftovers = clean.list("LIGHTHOUSE/SQ010/v002/")
    if fault == "507":
        assert leftovers == []  # cleanup could still delete: nothing partial remains
    else:
        assert "LIGHTHOUSE/SQ010/v002/manifest.json" not in leftovers  # read-only: never published
    # Once the store recovers, publishing carries on (the orphan media is adopted).
    publish_take(store, key_of(9), media("late.mp4"), {})
    assert publish_cut(store, "LIGHTHOUSE", "SQ010", files, {}, "edit-2").version >= 2


@pytest.mark.parametrize(
    ("methods", "succeeds"),
    [
        (("PUT",), True),  # the stored manifest can be read back: ours, so published
        (("PUT", "GET", "HEAD"), False),  # it cannot: the version may be visible, media stays
    ],
)
def test_manifest_stored_but_its_reply_lost(open_s3, make_proxy, media, methods, succeeds) -> None:
    # Every try of the manifest write reaches the service and then loses its reply.
    clean = open_s3()
    trip = Trip("reset_after", methods, suffix="manifest.json")
    trip.armed = True
    proxy = make_proxy(rule=trip)
    store = open_s3(proxy.url, AWS_MAX_ATTEMPTS="2")
    files = {"SQ010_previz_{version}.mp4": media("cut.mp4", 20_000), "cut.otio": media("c.otio")}
    try:
        cut = publish_cut(store, "LIGHTHOUSE", "SQ010", files, {}, "edit-1")
    except StoreError:
        cut = None
    assert proxy.injected["reset_after"] >= 2

    # Either published whole, or not visible at all.
    visible = published_versions(clean, "LIGHTHOUSE", "SQ010")
    if visible:
        assert visible == [1]
        manifest = read_manifest(clean, "LIGHTHOUSE", "SQ010", 1)
        assert sorted(manifest["files"]) == ["SQ010_previz_v001.mp4", "cut.otio"]
        for name, path in zip(manifest["files"], files.values(), strict=True):
            info = clean.stat(f"LIGHTHOUSE/SQ010/v001/{name}")
            assert info is not None, f"{name} gone from a visible version"
            assert info.sha256 == manifest["files"][name]["sha256"] == sha256_of(path), name
    else:
        assert cut is None and clean.list("LIGHTHOUSE/") == []
    assert (cut is not None) == succeeds
    if succeeds:
        assert cut.version == 1 and latest_version(clean, "LIGHTHOUSE", "SQ010").version == 1


def test_open_store_makes_no_request(aws_env) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    store = open_store("s3://some-bucket/previz")  # would fail if it touched the network
    assert store.uri == "s3://some-bucket/previz"
