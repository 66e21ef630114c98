"""Shots on several GPUs: one GPU per shot against `gpus: auto`, on a simulated node of 8 logical
GPUs with the synthetic generator, which runs a gang of n as much faster as the catalog's
context-parallel speed-up says (6.38x on 8, fitted to Wan 2.1 14B's published 1838 s -> 288 s).

    python benchmarks/gangs_bench.py [SCALE]     # SCALE: seconds of work x SCALE (default 1)

1. a night with a long tail: 24 shots of 5 s and 2 of 60 s. One GPU per shot cannot end before
   the long shots do (60 s) whatever the order; the malleable lower bound is the larger of the
   work over 8 GPUs (240 / 8 = 30 s) and each shot's best time at its widest (60 / 6.38 s).
   Goals: auto within 1.10x of that bound, and at least 1.5x shorter than one GPU per shot;
2. a night without one: 40 shots of 5 s and 4 of 20 s. Longest first on one GPU each is already
   at the bound there (35 s): auto must not be worse (within 1.03x);
3. one 60 s shot rendered alone (`--only`): auto gives it the node; the speed-up is reported.
The makespan is from the first attempt's start to the last one's end (ledger times), so the
cluster's own start-up is left out of both; each render's wall time is printed too.
Runs its own Ray cluster in a private temp dir; never touches another.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from previz.catalog import parallel_speedup  # noqa: E402
from previz.engine import render_plan  # noqa: E402
from previz.plan import plan_from_storyboard  # noqa: E402
from previz.storyboard import load_storyboard  # noqa: E402

SCALE = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
GPUS = 8


def board(folder: Path, name: str, shots: list[tuple[str, float]], gpus: str) -> Path:
    """Shots of the given seconds of work on one GPU (12 frames each: the CPU side stays small
    beside the simulated GPU time on this host's few cores)."""
    path = folder / f"{name}-{gpus}.yaml"
    lines = "".join(f"- {{id: {shot}, duration: 12f, prompt: {shot}, "
                    f"options: {{seconds_per_shot: {seconds * SCALE:g}}}}}\n"
                    for shot, seconds in shots)
    path.write_text(textwrap.dedent(f"""\
        project: BENCH
        sequence: {name.upper()}
        fps: 24
        resolution: 160x96
        defaults: {{model: synthetic, seed: 1, steps: 1, gpus: {gpus}}}
        shots:
    """) + textwrap.indent(lines, "  "))
    return path


def makespan(report) -> float:
    starts = [a.started_at.timestamp() for a in report.attempts]
    ends = [a.finished_at.timestamp() for a in report.attempts]
    return max(ends) - min(starts)


def lower_bound(shots: list[tuple[str, float]]) -> float:
    work = sum(seconds for _, seconds in shots) * SCALE
    return max(work / GPUS, max(s for _, s in shots) * SCALE / parallel_speedup(GPUS))


def render(folder: Path, name: str, shots, gpus: str, only=None) -> tuple[float, float, dict]:
    plan = plan_from_storyboard(load_storyboard(board(folder, name, shots, gpus)))
    began = time.monotonic()
    report = render_plan(plan, str(folder / f"store-{name}-{gpus}"), only=only)
    wall = time.monotonic() - began
    assert report.complete or only, [s for s in report.shots if not s.status.in_cut]
    sizes: dict[int, int] = {}
    for attempt in report.attempts:
        width = round(attempt.gpu_seconds / max(1e-9, (attempt.finished_at
                                                         - attempt.started_at).total_seconds()))
        sizes[width] = sizes.get(width, 0) + 1
    return makespan(report), wall, sizes


def compare(folder: Path, name: str, shots, only=None) -> dict:
    one, one_wall, _ = render(folder, name, shots, "1", only)
    auto, auto_wall, sizes = render(folder, name, shots, "auto", only)
    return {"case": name, "one_gpu_s": one, "auto_s": auto, "one_gpu_wall_s": one_wall,
            "auto_wall_s": auto_wall, "auto_sizes": dict(sorted(sizes.items()))}


def main() -> None:
    import ray
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="pvz-g-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = temp
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 4, "num_gpus": GPUS, "include_dashboard": False})
    folder = Path(tempfile.mkdtemp(prefix="pvz-gangs-"))
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
        long_tail = [(f"S{n:03d}0", 5.0) for n in range(24)] + [("LONG1", 60.0),
                                                                ("LONG2", 60.0)]
        row = compare(folder, "tail", long_tail)
        bound = lower_bound(long_tail)
        row.update(bound_s=bound, auto_vs_bound=row["auto_s"] / bound,
                   one_gpu_vs_auto=row["one_gpu_s"] / row["auto_s"],
                   target="auto_vs_bound <= 1.10, one_gpu_vs_auto >= 1.5")
        rows = [row]
        no_tail = [(f"S{n:03d}0", 5.0) for n in range(40)] + [(f"L{n:03d}0", 20.0)
                                                              for n in range(4)]
        row = compare(folder, "notail", no_tail)
        bound = lower_bound(no_tail)
        row.update(bound_s=bound, auto_vs_one_gpu=row["auto_s"] / row["one_gpu_s"],
                   auto_vs_bound=row["auto_s"] / bound, target="auto_vs_one_gpu <= 1.03")
        rows.append(row)
        alone = [("SH0040", 60.0), ("SH0050", 5.0)]
        row = compare(folder, "alone", alone, only=["SH0040"])
        row.update(speedup=row["one_gpu_s"] / row["auto_s"],
                   catalog_speedup=parallel_speedup(GPUS))
        rows.append(row)
        for row in rows:
            print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in row.items()))
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
