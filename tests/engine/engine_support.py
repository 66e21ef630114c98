"""Real Ray clusters for engine tests: logical GPUs on this machine, own temp dir and ports.

Never `ray stop`: it would hit every Ray cluster on the host. Each cluster here is shut down by
the handle that started it.
"""

import contextlib
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def logical_cluster(nodes: int = 2, gpus_per_node: int = 2, cpus_per_node: int = 2,
                    dashboard: bool = False, runtime_env: dict | None = None):
    import ray
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="pvz-t-", dir="/tmp")
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp
    head = {"num_cpus": 2, "num_gpus": 0, "include_dashboard": dashboard}
    if dashboard:
        head["dashboard_port"] = 0
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        workers = [cluster.add_node(num_cpus=cpus_per_node, num_gpus=gpus_per_node)
                   for _ in range(nodes)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING",
                 runtime_env=runtime_env)
        cluster.worker_nodes_list = workers
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
        shutil.rmtree(temp, ignore_errors=True)


def synthetic_board(folder: Path, shots: str, options: str = "{gpus: 1, seconds_per_frame: 0.01}",
                    fps: str = "24", name: str = "board.yaml") -> Path:
    """A storyboard rendered by the synthetic generator standing in for a GPU model."""
    path = folder / name
    path.write_text(textwrap.dedent(f"""\
        project: TEST
        sequence: SQ010
        fps: {fps}
        resolution: 192x108
        defaults: {{model: synthetic, seed: 1, options: {options}}}
        shots:
    """) + textwrap.indent(textwrap.dedent(shots), "  "))
    return path


SIX_SHOTS = """\
- {id: SH0010, duration: 24f, prompt: harbour}
- {id: SH0020, duration: 18f, prompt: boat}
- {id: SH0030, duration: 12f, prompt: rope, continue: SH0020}
- {id: SH0040, duration: 20f, prompt: gull, takes: 2, select: 2}
- {id: SH0050, duration: 16f, prompt: lamp, transition: {type: dissolve, duration: 4f}}
- {id: SH0060, duration: 30f, prompt: sea}
"""
