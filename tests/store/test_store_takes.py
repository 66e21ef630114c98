"""Takes: content-addressed, immutable, published media first and take.json last."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from previz.store import (
    NotFound,
    Store,
    StoreError,
    fetch_take_media,
    has_take,
    publish_take,
    read_take_record,
    take_link,
)

KEY = hashlib.sha256(b"shot SH0010 take 1").hexdigest()
RECIPE = {
    "prompt": "an old keeper climbs into the lamp room",
    "model": "wan2.1-t2v-1.3b",
    "revision": "main",
    "seed": 1234,
    "steps": 30,
    "size": [832, 480],
    "frames": 81,
    "conditioning": {"reference": "ab" * 32},
    "generator": "previz 0.1.0",
    "timings": {"load_s": 12.5, "generate_s": 95.0},
    "worker": "node-a/gpu0",
}


def test_publish_then_read(store: Store, media, tmp_path: Path) -> None:
    clip, thumb = media("take.mp4", 50_000), media("thumb.jpg", 900)
    assert not has_take(store, KEY)
    take = publish_take(store, KEY, clip, RECIPE, thumb_path=thumb)
    assert take.created and take.prefix == f"takes/{KEY[:2]}/{KEY}/"
    assert has_take(store, KEY)
    assert sorted(store.list(take.prefix)) == [
        take.prefix + "take.json",
        take.prefix + "take.mp4",
        take.prefix + "thumb.jpg",
    ]
    record = read_take_record(store, KEY)
    assert {k: record[k] for k in RECIPE} == RECIPE
    assert record["key"] == KEY
    assert record["media"] == {
        "name": "take.mp4",
        "size": 50_000,
        "sha256": hashlib.sha256(clip.read_bytes()).hexdigest(),
    }
    assert record["thumb"]["size"] == 900
    out = fetch_take_media(store, KEY, tmp_path / "fetched.mp4")
    assert out.read_bytes() == clip.read_bytes()
    assert take_link(store, KEY, 600)


def test_republishing_keeps_the_first(store: Store, media) -> None:
    first = publish_take(store, KEY, media("take.mp4"), RECIPE)
    again = publish_take(store, KEY, media("other.mp4"), {**RECIPE, "worker": "node-b/gpu1"})
    assert first.created and not again.created
    assert again.record["worker"] == "node-a/gpu0"
    assert again.record["media"] == first.record["media"]


def test_media_without_json_is_not_a_take(store: Store, media, tmp_path: Path) -> None:
    # What a render that died between its two writes leaves behind.
    orphan = media("orphan.mp4", 7_000)
    store.put_file(f"takes/{KEY[:2]}/{KEY}/take.mp4", orphan)
    assert not has_take(store, KEY)
    with pytest.raises(NotFound, match="render it first"):
        read_take_record(store, KEY)
    with pytest.raises(NotFound):
        fetch_take_media(store, KEY, tmp_path / "x.mp4")
    # The next render of the same key adopts the stored media: the json describes stored bytes.
    take = publish_take(store, KEY, media("mine.mp4", 8_000), RECIPE)
    assert take.created
    assert take.record["media"]["sha256"] == hashlib.sha256(orphan.read_bytes()).hexdigest()
    assert fetch_take_media(store, KEY, tmp_path / "y.mp4").read_bytes() == orphan.read_bytes()


def test_corrupt_media_is_detected(store: Store, media, tmp_path: Path) -> None:
    publish_take(store, KEY, media("take.mp4"), RECIPE)
    store.put_file(f"takes/{KEY[:2]}/{KEY}/take.mp4", media("tampered.mp4"))
    with pytest.raises(StoreError, match="does not match its take.json"):
        fetch_take_media(store, KEY, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    ("key", "record", "message"),
    [
        ("ABC", RECIPE, "not a take key"),
        (KEY.upper(), RECIPE, "64 lowercase hex"),
        (KEY, {**RECIPE, "media": "x"}, "sets media — the store writes these"),
        (KEY, {**RECIPE, "seed": float("nan")}, "not plain JSON"),
        (KEY, {**RECIPE, "worker": object()}, "not plain JSON"),
        (
            KEY,
            {**RECIPE, "ref": "https://b.s3.amazonaws.com/r.png?X-Amz-Signature=abc"},
            "credential or a presigned URL",
        ),
        (KEY, {**RECIPE, "who": "AKIAIOSFODNN7EXAMPLE"}, "credential"),
    ],
)
def test_bad_input_writes_nothing(store: Store, media, key, record, message) -> None:
    with pytest.raises(StoreError, match=message) as caught:
        publish_take(store, key, media("take.mp4"), record)
    assert "\n" not in str(caught.value) and store.uri in str(caught.value)
    assert "AKIAIOSFODNN7EXAMPLE" not in str(caught.value)
    assert store.list("takes/") == []


def test_missing_media_writes_nothing(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="missing or empty — render it again"):
        publish_take(store, KEY, tmp_path / "nope.mp4", RECIPE)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match="missing or empty"):
        publish_take(store, KEY, empty, RECIPE)
    assert store.list("takes/") == []


def test_take_json_is_readable_json(store: Store, media) -> None:
    publish_take(store, KEY, media("take.mp4"), RECIPE)
    raw = store.get_bytes(f"takes/{KEY[:2]}/{KEY}/take.json")
    assert json.loads(raw)["prompt"] == RECIPE["prompt"]
