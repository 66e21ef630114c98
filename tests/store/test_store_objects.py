"""The Store protocol, run against every backend (local folder and S3 through moto)."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import pytest

from previz.store import (
    MAX_LINK_EXPIRY_S,
    AlreadyExists,
    NotFound,
    Store,
    StoreError,
    WriteConflict,
    redact,
)


def test_store_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.uri.startswith(("file:///", "s3://"))


def test_bytes_round_trip_and_stat(store: Store) -> None:
    info = store.put_bytes("a/b/one.json", b'{"x": 1}')
    assert info.sha256 == hashlib.sha256(b'{"x": 1}').hexdigest()
    assert store.get_bytes("a/b/one.json") == b'{"x": 1}'
    stat = store.stat("a/b/one.json")
    assert stat is not None
    assert (stat.size, stat.sha256) == (8, info.sha256)
    assert store.exists("a/b/one.json")
    assert not store.exists("a/b/two.json")
    assert store.stat("a/b/two.json") is None


def test_missing_objects(store: Store) -> None:
    with pytest.raises(NotFound, match="no object a/missing.json"):
        store.get_bytes("a/missing.json")
    assert store.get_tagged("a/missing.json") is None
    with pytest.raises(NotFound):
        store.get_file("a/missing.json", "/tmp/never-written")
    store.delete("a/missing.json")  # deleting nothing is fine


def test_list_by_prefix_and_delete(store: Store) -> None:
    for key in ("p/x/1.txt", "p/x/2.txt", "p/y/3.txt", "q/4.txt"):
        store.put_bytes(key, key.encode())
    assert store.list("p/") == ["p/x/1.txt", "p/x/2.txt", "p/y/3.txt"]
    assert store.list("p/x/") == ["p/x/1.txt", "p/x/2.txt"]
    assert store.list("p/x/1") == ["p/x/1.txt"]
    assert store.list("nothing/") == []
    assert len(store.list()) == 4
    store.delete("p/x/1.txt")
    assert store.list("p/x/") == ["p/x/2.txt"]


def test_create_only_never_overwrites(store: Store) -> None:
    store.put_bytes("c/claim", b"first", create_only=True)
    with pytest.raises(AlreadyExists, match="already exists"):
        store.put_bytes("c/claim", b"second", create_only=True)
    assert store.get_bytes("c/claim") == b"first"
    # The identical bytes again (a retried request) are not a conflict.
    store.put_bytes("c/claim", b"first", create_only=True)


def test_compare_and_swap(store: Store) -> None:
    store.put_bytes("s/latest.json", b"1")
    data, tag = store.get_tagged("s/latest.json")
    assert data == b"1"
    store.put_bytes("s/latest.json", b"2", if_match=tag)
    with pytest.raises(WriteConflict, match="changed since it was read"):
        store.put_bytes("s/latest.json", b"3", if_match=tag)
    assert store.get_bytes("s/latest.json") == b"2"
    with pytest.raises(WriteConflict):
        store.put_bytes("s/absent.json", b"1", if_match=tag)
    assert not store.exists("s/absent.json")


def test_file_round_trip(store: Store, media, tmp_path: Path) -> None:
    source = media("clip.mp4", 300_000)
    info = store.put_file("f/clip.mp4", source)
    assert info.size == 300_000
    target = store.get_file("f/clip.mp4", tmp_path / "out" / "clip.mp4")
    assert target.read_bytes() == source.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["clip.mp4"]  # no temp left over
    with pytest.raises(AlreadyExists):
        store.put_file("f/clip.mp4", media("other.mp4", 10), create_only=True)
    store.put_file("f/clip.mp4", source, create_only=True)


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../etc/passwd", "/abs", "a//b", "a/./b", "sp ace", "a/b/", "ü", ""]
)
def test_unsafe_keys_are_refused(store: Store, key: str) -> None:
    with pytest.raises(StoreError, match="object key"):
        store.put_bytes(key, b"x")
    with pytest.raises(StoreError, match="object key"):
        store.get_bytes(key)


def test_links(store: Store) -> None:
    store.put_bytes("l/review.html", b"<html>ok</html>")
    link = store.link("l/review.html", 3600)
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == b"<html>ok</html>"
    if link.startswith("http"):
        assert "X-Amz-Signature=" in link and "X-Amz-Expires=3600" in link
        assert "X-Amz-Signature=***" in redact(link) and "testing" not in redact(link)
    else:
        assert link.startswith("file:///")
    with pytest.raises(StoreError, match="7 days"):
        store.link("l/review.html", MAX_LINK_EXPIRY_S + 1)
    with pytest.raises(StoreError, match="out of range"):
        store.link("l/review.html", 0)
    with pytest.raises(NotFound):
        store.link("l/missing.html")
