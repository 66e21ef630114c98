"""Cut versions: allocated by create-only claims, published by their manifest, `latest.json`
moved forward only, and an unchanged edit keeps its version."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import pytest

from previz.store import (
    CutVersion,
    NotFound,
    Store,
    StoreError,
    cut_links,
    latest_version,
    publish_cut,
    published_versions,
    read_manifest,
    reserve_version,
    unchanged_version,
)


@pytest.fixture
def cut_files(media) -> dict[str, Path]:
    return {
        "SQ010_previz_{version}.mp4": media("cut.mp4", 40_000),
        "SQ010_previz_{version}.otio": media("cut.otio", 2_000),
        "SQ010_previz_{version}.edl": media("cut.edl", 800),
        "SQ010_previz_{version}.xml": media("cut.xml", 1_500),
        "review.html": media("review.html", 3_000),
    }


MANIFEST = {"fps": 24, "frames": 240, "shots": ["SH0010", "SH0020"]}


def publish(store: Store, files, edit: str) -> CutVersion:
    return publish_cut(store, "LIGHTHOUSE", "SQ010", files, MANIFEST, edit)


def test_first_publish(store: Store, cut_files) -> None:
    cut = publish(store, cut_files, "edit-a")
    assert (cut.version, cut.name, cut.prefix, cut.reused) == (
        1,
        "v001",
        "LIGHTHOUSE/SQ010/v001/",
        False,
    )
    assert store.list(cut.prefix) == [
        cut.prefix + name
        for name in (  # no claim: a published version's manifest holds its number
            "SQ010_previz_v001.edl",
            "SQ010_previz_v001.mp4",
            "SQ010_previz_v001.otio",
            "SQ010_previz_v001.xml",
            "manifest.json",
            "review.html",
        )
    ]
    manifest = read_manifest(store, "LIGHTHOUSE", "SQ010", 1)
    assert manifest["fps"] == 24 and manifest["edit_key"] == "edit-a"
    assert manifest["name"] == "v001" and manifest["version"] == 1
    mp4 = cut_files["SQ010_previz_{version}.mp4"]
    assert manifest["files"]["SQ010_previz_v001.mp4"] == {
        "sha256": hashlib.sha256(mp4.read_bytes()).hexdigest(),
        "size": 40_000,
    }
    pointer = json.loads(store.get_bytes("LIGHTHOUSE/SQ010/latest.json"))
    assert pointer["version"] == 1 and pointer["edit_key"] == "edit-a"
    assert latest_version(store, "LIGHTHOUSE", "SQ010") == CutVersion(
        "LIGHTHOUSE", "SQ010", 1, "v001", "LIGHTHOUSE/SQ010/v001/", "edit-a"
    )


def test_versions_advance_and_unchanged_edits_are_reused(store: Store, cut_files) -> None:
    assert publish(store, cut_files, "edit-a").name == "v001"
    assert publish(store, cut_files, "edit-b").name == "v002"
    same = publish(store, cut_files, "edit-b")
    assert (same.name, same.reused) == ("v002", True)
    assert published_versions(store, "LIGHTHOUSE", "SQ010") == [1, 2]
    # Going back to an older edit makes a new newest version (latest never points back).
    assert publish(store, cut_files, "edit-a").name == "v003"
    assert unchanged_version(store, "LIGHTHOUSE", "SQ010", "edit-a").name == "v003"
    assert unchanged_version(store, "LIGHTHOUSE", "SQ010", "edit-b") is None  # not the latest
    assert unchanged_version(store, "LIGHTHOUSE", "SQ010", "edit-z") is None
    assert read_manifest(store, "LIGHTHOUSE", "SQ010", "latest")["name"] == "v003"
    assert read_manifest(store, "LIGHTHOUSE", "SQ010", "v002")["edit_key"] == "edit-b"


def test_latest_never_moves_backward(store: Store, media) -> None:
    first = reserve_version(store, "LIGHTHOUSE", "SQ020")
    second = reserve_version(store, "LIGHTHOUSE", "SQ020")
    assert (first.name, second.name) == ("v001", "v002")
    second.put("cut.mp4", media("b.mp4"))
    second.publish({}, "edit-b")
    first.put("cut.mp4", media("a.mp4"))
    first.publish({}, "edit-a")  # finishes last, but is the older version
    assert latest_version(store, "LIGHTHOUSE", "SQ020").name == "v002"
    assert published_versions(store, "LIGHTHOUSE", "SQ020") == [1, 2]


def test_a_failed_publish_leaves_nothing(store: Store, media) -> None:
    with pytest.raises(RuntimeError), reserve_version(store, "LIGHTHOUSE", "SQ030") as draft:
        draft.put("cut.mp4", media("a.mp4"))
        raise RuntimeError("assembly crashed")
    assert store.list("LIGHTHOUSE/SQ030/") == []
    assert latest_version(store, "LIGHTHOUSE", "SQ030") is None
    with reserve_version(store, "LIGHTHOUSE", "SQ030") as draft:
        assert draft.name == "v001"  # never published, so the number is still free


@pytest.mark.parametrize("claim", ["LIGHTHOUSE/SQ010/.claims/v001",
                                   "LIGHTHOUSE/SQ010/v001/.claim"],  # as an older previz claimed
                         ids=["claims", "in-folder"])
def test_unpublished_claims_are_skipped_not_shared(store: Store, cut_files, claim) -> None:
    store.put_bytes(claim, b"someone else, still assembling")
    cut = publish(store, cut_files, "edit-a")
    assert cut.name == "v002"
    assert published_versions(store, "LIGHTHOUSE", "SQ010") == [2]
    assert store.get_bytes(claim) == b"someone else, still assembling"


def test_latest_from_listing_when_pointer_is_missing(store: Store, cut_files) -> None:
    publish(store, cut_files, "edit-a")
    publish(store, cut_files, "edit-b")
    store.delete("LIGHTHOUSE/SQ010/latest.json")
    latest = latest_version(store, "LIGHTHOUSE", "SQ010")
    assert (latest.name, latest.edit_key) == ("v002", "edit-b")
    assert publish(store, cut_files, "edit-c").name == "v003"
    assert json.loads(store.get_bytes("LIGHTHOUSE/SQ010/latest.json"))["version"] == 3


def test_links(store: Store, cut_files) -> None:
    cut = publish(store, cut_files, "edit-a")
    links = cut_links(store, cut, 3600)
    assert set(links) == {
        "SQ010_previz_v001.mp4",
        "SQ010_previz_v001.otio",
        "SQ010_previz_v001.edl",
        "SQ010_previz_v001.xml",
        "review.html",
        "manifest.json",
    }
    with urllib.request.urlopen(links["review.html"], timeout=10) as response:
        assert response.read() == cut_files["review.html"].read_bytes()
    with pytest.raises(StoreError, match="7 days"):
        cut_links(store, cut, 8 * 24 * 3600)


@pytest.mark.parametrize(
    ("project", "sequence", "files", "manifest", "edit", "message"),
    [
        ("../etc", "SQ010", None, MANIFEST, "e", "project '../etc' is not a valid id"),
        ("LIGHTHOUSE", "SQ 10", None, MANIFEST, "e", "sequence 'SQ 10' is not a valid id"),
        ("LIGHTHOUSE", "SQ010", None, {"version": 9}, "e", "manifest sets version"),
        (
            "LIGHTHOUSE",
            "SQ010",
            None,
            {"url": "http://x/?X-Amz-Credential=AKIA1234567890ABCDEF"},
            "e",
            "credential or a presigned URL",
        ),
        ("LIGHTHOUSE", "SQ010", None, MANIFEST, "bad key!", "edit key 'bad key!' is not valid"),
        ("LIGHTHOUSE", "SQ010", {"../x.mp4": "cut.mp4"}, MANIFEST, "e", "not a safe file name"),
        ("LIGHTHOUSE", "SQ010", {"manifest.json": "cut.mp4"}, MANIFEST, "e", "is reserved"),
        ("LIGHTHOUSE", "SQ010", {"cut.mp4": "missing.mp4"}, MANIFEST, "e", "is missing"),
        ("LIGHTHOUSE", "SQ010", {}, MANIFEST, "e", "needs at least one file"),
    ],
)
def test_bad_input_claims_nothing(
    store: Store, cut_files, tmp_path, project, sequence, files, manifest, edit, message
) -> None:
    if files is not None:
        files = {name: tmp_path / "src" / path for name, path in files.items()}
    with pytest.raises(StoreError, match=message) as caught:
        publish_cut(store, project, sequence, cut_files if files is None else files, manifest, edit)
    text = str(caught.value)
    assert text.startswith(store.uri) and "\n" not in text and "AKIA" not in text
    assert store.list("") == []


def test_reading_what_is_not_there(store: Store) -> None:
    assert latest_version(store, "LIGHTHOUSE", "SQ010") is None
    with pytest.raises(NotFound, match="has no published cut"):
        read_manifest(store, "LIGHTHOUSE", "SQ010", "latest")
    with pytest.raises(NotFound, match="v007 is not published"):
        read_manifest(store, "LIGHTHOUSE", "SQ010", 7)
    with pytest.raises(StoreError, match="'v7' is not valid"):
        read_manifest(store, "LIGHTHOUSE", "SQ010", "v7")
