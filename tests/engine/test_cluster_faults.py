"""Faults that need a cluster of their own: a node removed mid-render, the driver killed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from engine_support import ROOT, SIX_SHOTS, logical_cluster, synthetic_board

from previz.cli import main
from previz.engine import EngineSettings, render_plan
from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.store.ledger import read_ledger
from previz.store.takes import has_take
from previz.storyboard import load_storyboard

# the S3 service of the store tests (moto's server mode on loopback), reused as it is
_TESTS = str(ROOT / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from store.conftest import aws_env, bucket, moto_url  # noqa: E402, F401

pytestmark = pytest.mark.slow


def test_node_removed_mid_render(tmp_path):
    with logical_cluster(nodes=2) as cluster:
        twelve = "".join(f"- {{id: SH{n:03d}0, duration: 24f, prompt: shot {n}}}\n"
                         for n in range(1, 13))
        plan = plan_from_storyboard(load_storyboard(synthetic_board(
            tmp_path, twelve, options="{gpus: 1, seconds_per_frame: 0.1}")))
        store = open_store(str(tmp_path / "store"))
        removed = []

        def remove_a_node():
            # Mid-render: two takes published, more work waiting than the 2 GPUs left can take.
            limit = time.time() + 120
            while sum(has_take(store, t.key) for t in plan.takes()) < 2 and time.time() < limit:
                time.sleep(0.05)
            node = cluster.worker_nodes_list[0]
            cluster.remove_node(node, allow_graceful=False)
            removed.append(node)

        remover = threading.Thread(target=remove_a_node)
        remover.start()
        # The lost node's workers are replaced where the cluster has room: none of the shots
        # may wait on a replacement that can never be placed (it would end as "hung").
        report = render_plan(plan, str(tmp_path / "store"),
                             settings=EngineSettings(task_timeout=60))
        remover.join()
        assert removed
        assert report.complete, [(s.id, s.error) for s in report.shots]
        assert not [a for a in report.attempts if "hung" in (a.error or "")]
        assert [a for a in report.attempts if a.outcome != "ok"], "the node held no work"
        assert all(has_take(store, take.key) for take in plan.takes())
        # Each take published exactly once; anything lost with the node was retried.
        ok = [a.take_key for a in report.attempts if a.outcome == "ok"]
        assert sorted(ok) == sorted(t.key for t in plan.takes())


def test_driver_killed_then_rerun_renders_only_the_rest(tmp_path):
    with logical_cluster(nodes=1) as cluster:
        board = synthetic_board(tmp_path, SIX_SHOTS, options="{gpus: 1, seconds_per_frame: 0.05}")
        plan = plan_from_storyboard(load_storyboard(board))
        store_uri = str(tmp_path / "store")
        command = [sys.executable, "-m", "previz", "render", str(board), "--store", store_uri,
                   "--address", cluster.address, "--json"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        store = open_store(store_uri)
        deadline = time.time() + 120
        while time.time() < deadline:
            published = [t.key for t in plan.takes() if has_take(store, t.key)]
            if len(published) >= 2:
                break
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        # The cluster outlives the driver: an encode it had started may still publish its take
        # (whole, or not at all). Wait until the store stops changing.
        published: set[str] = set()
        settled = time.time() + 30
        while time.time() < settled:
            now = {t.key for t in plan.takes() if has_take(store, t.key)}
            if now == published:
                break
            published = now
            time.sleep(3)
        assert 2 <= len(published) < len(plan.takes())
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr
        summary = json.loads(second.stdout)
        cached = {s["id"] for s in summary["shots"] if s["cached"]}
        assert cached == {s.id for s in plan.shots if s.selected_take.key in published}
        rows = read_ledger(store).to_pylist()
        second_run = [r for r in rows if r["run_id"] == summary["run_id"] and r["outcome"] == "ok"]
        rendered = {r["take_key"] for r in second_run}
        assert rendered == {t.key for t in plan.takes()} - published
        assert all(has_take(store, t.key) for t in plan.takes())
        # The killed driver's takes have their rows too (written where they were published),
        # each take exactly one.
        ok = sorted(r["take_key"] for r in rows if r["outcome"] == "ok")
        assert ok == sorted(t.key for t in plan.takes())


def test_workers_without_the_stores_credentials_are_told_apart_from_this_machine(
        tmp_path, bucket, aws_env, capsys):  # noqa: F811
    # The cluster's nodes start without AWS credentials; this machine (the driver) has them.
    keys = {name: os.environ.pop(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    try:
        cluster = logical_cluster(nodes=1)
        cluster.__enter__()
    finally:
        os.environ.update(keys)
    store = f"s3://{bucket}/previz"
    try:
        board = synthetic_board(tmp_path, "- {id: SH0010, duration: 12f, prompt: x}\n")
        capsys.readouterr()
        code = main(["render", str(board), "--store", store])
        err = capsys.readouterr().err
        # `previz doctor` says the same before a render, node by node
        doctor = main(["doctor", "--store", store, "--json"])
        report = json.loads(capsys.readouterr().out)
    finally:
        cluster.__exit__(None, None, None)
    assert code == 1, err
    last = err.strip().splitlines()[-1]  # after the progress lines
    assert last.startswith(f"previz: {store}: the cluster's workers have no usable "
                           "credentials for the store, although this machine has")
    assert "instance profile" in last and "Traceback" not in err
    stores = {c["where"]: (c["status"], c["detail"]) for c in report["checks"]
              if c["name"] == "store"}
    assert doctor == 1 and stores.pop("this machine")[0] == "ok"
    assert len(stores) == 2  # the head and the worker node
    assert all(status == "FAIL" and "no usable credentials on this node" in detail
               for status, detail in stores.values()), stores
