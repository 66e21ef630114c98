"""Benchmark: what an edit costs, against a baseline revision in the same run. Prints ratios.

    python benchmarks/iteration.py [--baseline REV] [--storyboard storyboards/demo.yaml]
                                   [--running-cluster] [--versions N]

For this tree and for the baseline (checked out into a temporary git worktree), each in a store
of its own: render the storyboard once (not measured), then
1. rerun it unchanged;
2. change the first shot's prompt and render (one shot re-renders);
3. lengthen the second shot by half a second and render (that shot re-renders, every later
   shot moves in the cut);
and with --versions N, more one-prompt edits (a shot further on each time) up to version N,
measuring the last; each timed as the whole `previz render` process minus what the re-rendered
shots spent
rendering (their ledger rows), and the bytes each new version adds to the store (hard links
counted once). Storyboards are rendered with every shot on the draft model (CPU only), so any
storyboard can be measured on this machine.

Each render starts its own embedded Ray, as `previz render` does without --address; with
--running-cluster every render is given the --address of one local Ray cluster the benchmark
starts first (its own temp dir, stopped by the benchmark), as a supervisor iterating against a
cluster does.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def draft_copy(storyboard: Path, folder: Path) -> Path:
    """The storyboard beside its files, every shot on the draft model (and without fade_out,
    which a baseline revision from before it would refuse)."""
    shutil.copytree(storyboard.parent, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.yaml", "renders"))
    board = yaml.safe_load(storyboard.read_text())
    board.setdefault("defaults", {})["model"] = "draft"
    board.pop("weights", None)
    for shot in board["shots"]:
        shot.pop("model", None)
        shot.pop("options", None)
        shot.pop("fade_out", None)
    path = folder / storyboard.name
    path.write_text(yaml.safe_dump(board, sort_keys=False))
    return path


def store_bytes(store: Path) -> int:
    """Bytes the store holds on disk, each hard-linked file once."""
    seen, total = set(), 0
    for path in store.rglob("*"):
        if path.is_file():
            info = path.stat()
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def render(tree: Path, board: Path, store: Path, address: str | None) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "previz", "render", str(board), "--store", str(store),
               "--json", *(["--address", address] if address else [])]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tree)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"render failed in {tree}:\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def render_seconds(store: Path, run_id: str) -> float:
    """What this run's published attempts spent rendering, by the ledger."""
    from previz.store import open_store
    from previz.store.ledger import read_ledger

    rows = [r for r in read_ledger(open_store(str(store))).to_pylist()
            if r["run_id"] == run_id and r["outcome"] == "ok"]
    return sum((r["finished_at"] - r["started_at"]).total_seconds() for r in rows)


def measure(tree: Path, storyboard: Path, work: Path, address: str | None,
            versions: int = 0) -> dict[str, tuple[float, int, str]]:
    """{case: (overhead seconds, bytes added, version)}"""
    board = draft_copy(storyboard, work / "board")
    store = work / "store"
    render(tree, board, store, address)
    results = {}
    text = board.read_text()
    document = yaml.safe_load(text)
    edits = {
        "no change": document,
        "one prompt": {**document, "shots": [
            {**document["shots"][0], "prompt": document["shots"][0]["prompt"] + ", later"},
            *document["shots"][1:]]},
        "one duration": {**document, "shots": [
            document["shots"][0],
            {**document["shots"][1], "duration": f"{_seconds(document['shots'][1]) + 0.5}s"},
            *document["shots"][2:]]},
    }
    # more one-prompt edits, each on the last one's storyboard, up to version `versions`
    extra = []
    latest = edits["one duration"]
    for number in range(len(edits) + 1, versions + 1):  # v001 to v003 are made by then
        shots = copy.deepcopy(latest["shots"])
        shots[number % len(shots)]["prompt"] += f", version {number}"
        latest = {**latest, "shots": shots}
        edits[f"version {number}"] = latest
        extra.append(f"version {number}")
    for case, edited in edits.items():
        board.write_text(yaml.safe_dump(edited, sort_keys=False))
        before = store_bytes(store)
        wall, summary = render(tree, board, store, address)
        results[case] = (wall - render_seconds(store, summary["run_id"]),
                         store_bytes(store) - before, summary["version"])
    for case in extra[:-1]:  # of the extra versions, the last is reported
        del results[case]
    return results


@contextlib.contextmanager
def local_cluster():
    """A one-node Ray cluster of this machine's CPUs, in its own temp dir; its processes are
    this process's children, stopped by pid when it ends."""
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="pvz-bench-", dir="/tmp")
    saved = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": os.cpu_count(), "num_gpus": 0, "include_dashboard": False})
    try:
        yield cluster.address
    finally:
        cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved
        shutil.rmtree(temp, ignore_errors=True)


def _seconds(shot: dict) -> float:
    value = str(shot["duration"])
    if value.endswith("s"):
        return float(value[:-1])
    if value.endswith("f"):
        return int(value[:-1]) / 24
    return float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="a git revision to compare against")
    parser.add_argument("--storyboard", default=str(ROOT / "storyboards" / "demo.yaml"))
    parser.add_argument("--running-cluster", action="store_true",
                        help="render against one local Ray cluster started first")
    parser.add_argument("--versions", type=int, default=0, metavar="N",
                        help="go on with one-prompt edits up to version N and report the last")
    args = parser.parse_args()
    storyboard = Path(args.storyboard).resolve()
    with tempfile.TemporaryDirectory(prefix="previz-iteration-") as scratch:
        trees = {"previz": ROOT}
        if args.baseline:
            baseline = Path(scratch) / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach",
                            str(baseline), args.baseline], check=True, capture_output=True)
            trees = {"baseline": baseline, **trees}
        try:
            with contextlib.ExitStack() as stack:
                address = stack.enter_context(local_cluster()) if args.running_cluster else None
                figures = {name: measure(tree, storyboard, Path(scratch) / name, address,
                                         args.versions)
                           for name, tree in trees.items()}
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(baseline)], capture_output=True)
    where = "a running local Ray cluster" if args.running_cluster else "an embedded Ray each"
    print(f"{storyboard.name}, {datetime.now():%Y-%m-%d}, every shot on the draft model, "
          f"on {where}")
    for case in figures["previz"]:
        line = f"case={case!r}"
        for name, results in figures.items():
            seconds, added, version = results[case]
            line += f"  {name}_s={seconds:.2f}  {name}_MB={added / 1e6:.1f} ({version})"
        if "baseline" in figures:
            base_s, base_b, _ = figures["baseline"][case]
            new_s, new_b, _ = figures["previz"][case]
            line += f"  time_ratio={new_s / base_s:.2f}"
            line += f"  bytes_ratio={new_b / base_b:.2f}" if base_b else ""
        print(line)


if __name__ == "__main__":
    main()
