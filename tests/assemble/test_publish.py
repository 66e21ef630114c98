"""Stage 5 as `previz render` runs it: takes from the store, the cut published as a version."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import make_plan, write_takes

from previz.assemble import AssembleError, assemble_and_publish, cut_from_takes, publish_cut
from previz.engine import RenderReport, ShotOutcome, TaskStatus
from previz.plan import plan_from_storyboard
from previz.store import open_store, publish_take, read_manifest
from previz.store.keys import take_object
from previz.storyboard import load_storyboard

LAYOUT = [(30, None), (24, "dissolve 6"), (30, None)]


def render_report(plan, statuses: dict[str, str] | None = None) -> RenderReport:
    """The engine's report: every shot rendered unless `statuses` says otherwise."""
    statuses = statuses or {}
    shots = []
    for shot in plan.shots:
        status = statuses.get(shot.id, "rendered")
        shots.append(ShotOutcome(id=shot.id, status=status, take=shot.selected_take.key,
                                 cached=False,
                                 error="worker lost" if status == "failed" else None))
    return RenderReport(run_id="run-test", shots=shots, attempts=[], started=0.0, finished=1.0,
                        gaps=[], loads=1,
                        take_status={s.selected_take.key: TaskStatus.DONE
                                     if statuses.get(s.id) is None else TaskStatus.FAILED
                                     for s in plan.shots})


def publish_takes(store, plan, takes, skip=()) -> None:
    for shot in plan.shots:
        if shot.id not in skip:
            publish_take(store, takes[shot.id].key, takes[shot.id].path,
                         {"shot": shot.id, "model": "draft", "seed": 7})


class RecordingStore:
    """The real store, with every write it is asked for noted in order (a spy, not a mock)."""

    def __init__(self, store):
        self._store = store
        self.writes: list[str] = []
        self.copies: list[tuple[str, str]] = []

    def __getattr__(self, name):
        return getattr(self._store, name)

    def put_file(self, key, *args, **kwargs):
        self.writes.append(key)
        return self._store.put_file(key, *args, **kwargs)

    def put_bytes(self, key, *args, **kwargs):
        self.writes.append(key)
        return self._store.put_bytes(key, *args, **kwargs)

    def copy(self, source, key):
        self.writes.append(key)
        self.copies.append((source, key))
        return self._store.copy(source, key)


@pytest.fixture
def setup(tmp_path):
    plan = make_plan(tmp_path, LAYOUT)
    takes = write_takes(plan, tmp_path / "takes")
    root = tmp_path / "store"
    return plan, takes, root


def test_media_go_first_and_the_manifest_last(setup):
    plan, takes, root = setup
    store = RecordingStore(open_store(str(root)))
    publish_takes(store, plan, takes)
    store.writes.clear()
    result = assemble_and_publish(plan, store, render_report(plan))
    assert result.version == "v001" and result.reused is False
    prefix = "TESTPROJ/SQ010/v001/"
    assert store.writes[0] == "TESTPROJ/SQ010/.claims/v001"  # the number first, beside the folder
    writes = [k[len(prefix):] for k in store.writes if k.startswith(prefix)]
    assert writes[-1] == "manifest.json"
    files = writes[:-1]
    manifest = read_manifest(open_store(str(root)), "TESTPROJ", "SQ010", 1)
    assert sorted(files) == sorted(manifest["files"])
    media = [n for n in files if n.endswith((".mp4", ".jpg"))]
    assert files[:len(media)] == media  # every picture before any cut file or page
    assert files[-1] == "review.html"
    assert {"SQ010_previz_v001.mp4", "SQ010_previz_v001_review.mp4", "SH0010_t1.mp4",
            "SQ010_previz_v001.otio", "SQ010_previz_v001.edl",
            "SQ010_previz_v001.xml"} <= set(files)
    # latest.json moves after the manifest
    assert store.writes[-1] == "TESTPROJ/SQ010/latest.json"
    # what was published is what the manifest lists, and the links lead to it
    folder = root / prefix
    # ... and nothing else: no claim once published, nothing staged
    assert sorted(p.name for p in folder.iterdir()) == sorted([*manifest["files"], "manifest.json"])
    for role in ("cut", "review", "review_copy", "otio", "edl", "xml", "contact_sheet"):
        path = Path(unquote(urlparse(getattr(result, role)).path))
        assert path.is_file() and path.parent == folder, role
    assert manifest["edit_key"].startswith("cut-")
    assert manifest["shots"][1]["take_key"] == takes["SH0020"].key


def test_the_same_takes_reuse_the_version_and_a_changed_take_mints_the_next(setup, tmp_path):
    plan, takes, root = setup
    uri = str(root)
    store = open_store(uri)
    publish_takes(store, plan, takes, skip={"SH0030"})
    # SH0030 failed: a placeholder stands in for it
    first = assemble_and_publish(plan, uri, render_report(plan, {"SH0030": "failed"}))
    assert first.version == "v001" and not first.reused
    v001 = read_manifest(store, "TESTPROJ", "SQ010", "v001")
    assert v001["shots"][2]["placeholder"] is True
    assert v001["shots"][2]["error"] == "worker lost"
    # the same again: nothing is assembled, the version is reused
    again = assemble_and_publish(plan, uri, render_report(plan, {"SH0030": "failed"}))
    assert again.version == "v001" and again.reused is True
    assert not (root / "TESTPROJ" / "SQ010" / "v002").exists()
    # SH0030 rendered now: a new take in the cut mints v002, v001 stays as it was
    publish_takes(store, plan, takes, skip={"SH0010", "SH0020"})
    second = assemble_and_publish(plan, uri, render_report(plan))
    assert second.version == "v002" and not second.reused
    v002 = read_manifest(store, "TESTPROJ", "SQ010", "v002")
    assert v002["shots"][2]["placeholder"] is False
    assert v002["shots"][2]["take_key"] == takes["SH0030"].key
    assert v002["edit_key"] != v001["edit_key"]
    assert read_manifest(store, "TESTPROJ", "SQ010", "v001") == v001
    assert json.loads((root / "TESTPROJ" / "SQ010" / "latest.json").read_text())["name"] == \
        "v002"
    assert (root / "TESTPROJ/SQ010/v002/SQ010_previz_v002.mp4").is_file()
    # a different take of a shot (its seed changed in the storyboard) mints v003
    make_plan(tmp_path, LAYOUT, name="reseeded.yaml")
    board = tmp_path / "reseeded.yaml"
    board.write_text(board.read_text().replace("    duration: 24f\n",
                                               "    duration: 24f\n    seed: 9\n"))
    changed = plan_from_storyboard(load_storyboard(board))
    assert changed.shots[1].selected_take.key != plan.shots[1].selected_take.key
    assert changed.shots[0].selected_take.key == plan.shots[0].selected_take.key
    new_takes = write_takes(changed, tmp_path / "new-takes")
    publish_takes(store, changed, new_takes, skip={"SH0010", "SH0030"})
    third = assemble_and_publish(changed, uri, render_report(changed))
    assert third.version == "v003" and not third.reused
    v003 = read_manifest(store, "TESTPROJ", "SQ010", "v003")
    assert v003["shots"][1]["take_key"] == new_takes["SH0020"].key
    assert v003["shots"][1]["seed"] == 9
    # back to the first seed: the edit of v002 again, published as v004 (latest never points
    # back to an older version)
    back = assemble_and_publish(plan, uri, render_report(plan))
    assert back.version == "v004" and not back.reused
    assert read_manifest(store, "TESTPROJ", "SQ010", "v004")["edit_key"] == v002["edit_key"]


def test_a_cut_assembled_for_a_taken_version_is_refused(setup, tmp_path):
    plan, takes, root = setup
    store = open_store(str(root))
    publish_takes(store, plan, takes)
    assemble_and_publish(plan, store, render_report(plan))  # v001 is taken
    cut = cut_from_takes(plan, takes, tmp_path / "work")  # assembled as v001
    with pytest.raises(AssembleError, match="next version of TESTPROJ/SQ010 is v002"):
        publish_cut(cut, store)
    assert not (root / "TESTPROJ" / "SQ010" / "v002").exists()


# the S3 service of the store tests (moto's server mode on loopback), reused as it is
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from store.conftest import aws_env, bucket, moto_url  # noqa: E402, F401


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_new_version_adds_no_media_bytes_for_unchanged_shots(setup, tmp_path, request,
                                                               backend):
    """Each version folder holds every shot's media (an editor can copy it away), yet a shot
    whose take did not change costs no bytes: a hard link to the take on a local store, a
    server-side copy on S3 (nothing downloaded and uploaded again)."""
    plan, takes, root = setup
    uri = str(root) if backend == "local" else f"s3://{request.getfixturevalue('bucket')}/p"
    store = RecordingStore(open_store(uri))
    publish_takes(store, plan, takes)
    assemble_and_publish(plan, store, render_report(plan))
    # SH0020 re-rendered with another seed: v002 shows its new take, the others as in v001
    make_plan(tmp_path, LAYOUT, name="reseeded.yaml")
    board = tmp_path / "reseeded.yaml"
    board.write_text(board.read_text().replace("    duration: 24f\n",
                                               "    duration: 24f\n    seed: 9\n"))
    changed = plan_from_storyboard(load_storyboard(board))
    new_takes = write_takes(changed, tmp_path / "new-takes")
    publish_takes(store, changed, new_takes, skip={"SH0010", "SH0030"})
    store.writes.clear()
    store.copies.clear()
    second = assemble_and_publish(changed, store, render_report(changed))
    assert second.version == "v002"
    media = {shot["id"]: shot["media"] for shot in
             read_manifest(store, "TESTPROJ", "SQ010", "v002")["shots"]}
    prefix = "TESTPROJ/SQ010/v002/"
    # Every shot's media is a copy of its take made in the store, none an upload.
    assert sorted(store.copies) == sorted(
        (take_object(shot.selected_take.key, "take.mp4"), prefix + media[shot.id])
        for shot in changed.shots)
    assert len(store.writes) == len(set(store.writes))  # and not uploaded besides
    if backend == "local":
        for shot in changed.shots:  # the very same file on disk: no bytes added
            take = root / take_object(shot.selected_take.key, "take.mp4")
            version = root / prefix / media[shot.id]
            assert version.stat().st_ino == take.stat().st_ino
            assert version.read_bytes() == take.read_bytes()
    manifest = read_manifest(store, "TESTPROJ", "SQ010", "v002")
    for shot in changed.shots:  # the manifest vouches for them as for any file
        assert manifest["files"][media[shot.id]]["sha256"] == store.stat(
            take_object(shot.selected_take.key, "take.mp4")).sha256
