"""`previz doctor` on this machine: the facts it gathers from real files, binaries and stores, and
how it judges them. The cluster routes (a token cluster, workers without the store's
credentials) are in tests/cluster/test_local_cluster.py and tests/engine/test_cluster_faults.py."""

import json
import shutil

import pytest
from command_support import clean_env, run_previz

from previz.doctor import (
    HERE,
    Status,
    WeightsNeed,
    ffmpeg_facts,
    judge_ffmpeg,
    judge_gpus,
    judge_signing,
    judge_store,
    judge_weights,
    store_facts,
    weights_facts,
    weights_needs,
)

H100 = {"torch": "2.13.0+cu128", "torch_cuda": "12.8", "driver": "570.86.15", "cuda": "12.8",
        "cards": [{"name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.6}] * 8}
WAN_14B = WeightsNeed("wan2.1-t2v-14b", "/mnt/models/wan14b", None, 70.0, True)


def test_ffmpeg_found_with_every_codec_previz_writes():
    check = judge_ffmpeg(ffmpeg_facts(), HERE)
    assert check.status is Status.OK, check.detail
    assert "libx264" in check.detail and "prores_ks" in check.detail


def test_a_missing_or_partial_ffmpeg_fails_naming_what_it_lacks(monkeypatch, tmp_path):
    monkeypatch.setenv("PREVIZ_FFMPEG", str(tmp_path / "no-ffmpeg"))
    absent = judge_ffmpeg(ffmpeg_facts(), HERE)
    assert absent.status is Status.FAIL and "PREVIZ_FFMPEG" in absent.detail
    # a build without x264 (as some distributions ship) cannot write a take
    partial = judge_ffmpeg({"exe": "/usr/bin/ffmpeg", "version": "ffmpeg 6.1",
                            "have": ["aac", "concat", "mov", "mp4"]}, HERE)
    assert partial.status is Status.FAIL and "libx264 (every take and cut)" in partial.detail
    no_editorial = judge_ffmpeg({"exe": "ffmpeg", "version": "ffmpeg 6.1",
                                 "have": ["aac", "concat", "libx264", "mov", "mp4"]}, HERE)
    assert no_editorial.status is Status.WARN and "--editorial-media" in no_editorial.detail


def test_the_store_is_written_read_and_removed(tmp_path):
    facts = store_facts(str(tmp_path / "store"))
    assert judge_store(facts, HERE).status is Status.OK
    assert not list((tmp_path / "store").rglob("*.probe"))  # nothing left behind


def test_a_store_that_cannot_be_written_fails(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store should be")
    check = judge_store(store_facts(str(blocked)), HERE)
    assert check.status is Status.FAIL and str(blocked) in check.detail


def test_a_node_writing_its_own_disk_is_not_a_shared_store(tmp_path):
    """A folder store a node writes on its own disk: the probe it wrote (kept for this
    machine to look for) is not in the folder this machine sees."""
    from previz.doctor import _seen_here

    node_disk, shared = str(tmp_path / "node" / "renders"), str(tmp_path / "renders")
    written = store_facts(node_disk, keep=True)
    facts = {**written, "shared": _seen_here(shared, written["key"])}
    check = judge_store(facts, "node 10.0.0.7 (abcdef)")
    assert check.status is Status.FAIL and "every node shares" in check.detail
    # where the folder is the same one, the probe is found, then removed
    assert _seen_here(node_disk, written["key"]) is True
    assert not list((tmp_path / "node").rglob("*.probe"))


@pytest.mark.parametrize(("facts", "verdict", "says"), [
    (H100, Status.OK, "8 x NVIDIA H100 80GB HBM3 (79.6 GB), driver 570.86.15"),
    ({**H100, "cuda": "12.2"}, Status.FAIL, "update the driver"),
    ({**H100, "torch_cuda": None}, Status.FAIL, "is a CPU build"),
    ({**H100, "cards": [{"name": "NVIDIA L4", "memory_gb": 22.5}] * 8}, Status.FAIL,
     "too small for wan2.1-t2v-14b (needs 70 GB)"),
    ({"torch": "2.13.0", "torch_cuda": None, "driver": None}, Status.FAIL, "logical GPUs"),
    ({**H100, "error": "NVIDIA-SMI has failed", "cards": []}, Status.FAIL, "nvidia-smi failed"),
])
def test_gpus_judged_against_driver_torch_and_the_models(facts, verdict, says):
    check = judge_gpus(facts, 8, [WAN_14B], "node 10.0.0.7 (abcdef)")
    assert check.status is verdict and says in check.detail, check.detail


def test_more_ray_gpus_than_cards_fails():
    check = judge_gpus({**H100, "cards": H100["cards"][:4]}, 8, [], "node")
    assert check.status is Status.FAIL and "--num-gpus 4" in check.detail


def test_weights_folders_and_the_hub_cache(tiny_weights, tmp_path, monkeypatch):
    folder = tmp_path / "Wan-tiny"
    shutil.copytree(tiny_weights("wan_t2v"), folder)
    need = WeightsNeed("wan2.1-t2v-1.3b", str(folder), None, 12.0, True)
    assert weights_facts(need)["found"]
    # a component the index lists but the folder lacks (an interrupted copy)
    shutil.rmtree(folder / "transformer")
    partial = weights_facts(need)
    assert not partial["found"] and partial["why"] == "components missing: transformer"
    absent = weights_facts(WeightsNeed("wan2.1-t2v-1.3b", str(tmp_path / "nowhere"), None,
                                       12.0, True))
    assert absent["why"] == "no such folder"
    # a hub id, in the Hugging Face cache's layout (refs/main -> snapshots/<commit>)
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--Wan-AI--Wan2.1-T2V-1.3B-Diffusers"
    shutil.copytree(tiny_weights("wan_t2v"), repo / "snapshots" / ("a" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    hub = WeightsNeed("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", None, 12.0, False)
    uncached = WeightsNeed("ltx-video", "Lightricks/LTX-Video", None, 16.0, False)
    facts = [weights_facts(hub), weights_facts(uncached)]
    assert [f["found"] for f in facts] == [True, False]
    # the catalog's models missing from the cache: a warning (a render downloads them) unless
    # the hub is offline on that node; a storyboard's folder missing: a failure
    assert judge_weights(facts, False, "node").status is Status.WARN
    assert judge_weights(facts, True, "node").status is Status.FAIL
    named = judge_weights([partial, facts[0]], False, "node")
    assert named.status is Status.FAIL and "transformer" in named.detail


def test_a_storyboards_weights_are_the_ones_looked_for(tmp_path):
    board = tmp_path / "board.yaml"
    board.write_text("project: TEST\nsequence: SQ010\nfps: 24\nresolution: 832x480\n"
                     "weights: {wan2.1-t2v-1.3b: /mnt/models/wan13}\n"
                     "shots:\n- {id: SH0010, duration: 33f, prompt: a lighthouse, "
                     "model: wan2.1-t2v-1.3b}\n- {id: SH0020, duration: 24f, prompt: x, "
                     "model: draft}\n")
    needs = weights_needs([str(board)])
    assert [(n.model, n.location, n.named) for n in needs] == [
        ("wan2.1-t2v-1.3b", "/mnt/models/wan13", True)]
    catalog = weights_needs([])
    assert catalog and not any(n.named for n in catalog)
    assert all(n.location.count("/") == 1 for n in catalog)  # hub ids


def test_doctor_on_this_machine_prints_a_line_per_check_and_fails_with_exit_1(tmp_path,
                                                                               test_ca):
    """No --address: the Ray a render would start here (in a process of its own, as a TD runs
    it: an embedded Ray leaves token settings behind in the process that started it). A broken
    store fails the run."""
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    done = run_previz("doctor", "--store", str(blocked), "--json", env=clean_env(**test_ca.env))
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["failed"] >= 1, done.stderr
    names = [(c["name"], c["where"], c["status"]) for c in report["checks"]]
    assert ("store", HERE, "FAIL") in names and ("ffmpeg", HERE, "ok") in names
    assert ("ray", "cluster", "ok") in names  # an embedded Ray started, and was checked
    assert any(name == "versions" and where.endswith("head)") for name, where, _ in names)
    # the embedded Ray's node signs takes with the certificate this machine signs cuts with
    signing = [(where, status) for name, where, status in names if name == "signing"]
    assert signing[0] == (HERE, "ok") and len(signing) == 2 and signing[1][1] == "ok"


def test_signing_judged_here_and_on_the_nodes():
    unsigned_node = judge_signing({"subject": None}, "CN=previz signer", "node 10.0.0.7")
    assert unsigned_node.status is Status.WARN and "will be unsigned" in unsigned_node.detail
    broken = judge_signing({"error": "PREVIZ_C2PA_KEY=/x: no such file"}, None, "node")
    assert broken.status is Status.FAIL and "PREVIZ_C2PA_KEY" in broken.detail
    assert judge_signing({"subject": None}, None, HERE).status is Status.WARN
