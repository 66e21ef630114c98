"""cluster/local: a head plus worker nodes with logical GPUs on this machine, token auth on, in
its own folder and ports; the stop script ends exactly what the start script started."""

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

LOCAL = Path(__file__).resolve().parents[2] / "cluster" / "local"


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    return env


def _ray_processes(folder: str) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if folder in command and "ray" in command:
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_start_three_nodes_with_logical_gpus_then_stop_only_them(tmp_path):
    started = subprocess.run([str(LOCAL / "start-local-cluster.sh"), "--workers", "2",
                              "--gpus-per-worker", "2", "--cpus-per-worker", "1"],
                             env=_env(), capture_output=True, text=True, timeout=240)
    match = re.search(r"folder:\s+(/tmp/pvz-local-\S+)", started.stdout)
    assert started.returncode == 0 and match, started.stdout + started.stderr
    folder = match[1]
    try:
        assert "stop-local-cluster.sh " + folder in started.stdout  # says how to stop it
        pids = (Path(folder) / "pids").read_text().split()
        assert len(pids) == 3
        address = (Path(folder) / "address").read_text().strip()
        token = (Path(folder) / "auth_token").read_text().strip()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{address}/nodes?view=summary", timeout=30)
        assert refused.value.code == 401  # token authentication is on
        request = urllib.request.Request(f"{address}/nodes?view=summary",
                                         headers={"Authorization": f"Bearer {token}"})
        # Every worker node is up when the script returns: two nodes starting at once on a
        # two-core machine used to leave one out, and the cluster short of GPUs.
        nodes = json.load(urllib.request.urlopen(request, timeout=30))["data"]["summary"]
        gpus = sorted(n["raylet"]["resourcesTotal"].get("GPU", 0) for n in nodes
                      if n["raylet"]["state"] == "ALIVE")
        assert gpus == [0, 2, 2]  # a CPU head and two workers with two logical GPUs each
        assert _ray_processes(folder)
        _doctor_checks_it(started.stdout, address, folder, tmp_path)
    finally:
        stopped = subprocess.run([str(LOCAL / "stop-local-cluster.sh"), folder],
                                 capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not _ray_processes(folder)
    assert not Path(folder).exists()


def _doctor_checks_it(printed: str, dashboard: str, folder: str, tmp_path: Path) -> None:
    """`previz doctor` from the TD's seat, with the env file the start script wrote: every node
    answers, by the GCS address and through the dashboard as a Ray Job; without the token it
    fails at once, saying why."""
    gcs = re.search(r"GCS:\s+(\S+)", printed)[1]
    store = str(tmp_path / "store")
    with_token = {**_env(), "RAY_AUTH_MODE": "token",
                  "RAY_AUTH_TOKEN_PATH": str(Path(folder) / "auth_token")}

    def doctor(address: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "previz", "doctor", "--address", address,
                               "--store", store], env=env, capture_output=True, text=True,
                              timeout=180)

    joined = doctor(gcs, with_token)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    lines = joined.stdout.splitlines()
    assert any(line.startswith("ok    ray      cluster") and "token accepted" in line
               and "3 node(s) alive, 4 GPU(s)" in line for line in lines), joined.stdout
    # every node wrote the store itself, and the two GPU nodes say their GPUs are logical
    assert sum(line.startswith("ok    store    node") for line in lines) == 3, joined.stdout
    assert sum(line.startswith("warn  gpus     node") and "logical GPUs" in line
               for line in lines) == 2, joined.stdout
    assert lines[-1].startswith("all ") and "checks passed" in lines[-1]
    as_job = doctor(dashboard, with_token)
    assert as_job.returncode == 0, as_job.stdout + as_job.stderr
    assert "Jobs API reachable, token accepted" in as_job.stdout
    assert sum(line.startswith("ok    store    node") for line in as_job.stdout.splitlines()) == 3
    refused = doctor(gcs, _env())
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "FAIL  ray" in refused.stdout and "refused this machine" in refused.stdout


def test_stop_refuses_a_folder_it_did_not_make(tmp_path):
    refused = subprocess.run([str(LOCAL / "stop-local-cluster.sh"), str(tmp_path)],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and "is not a folder start-local-cluster.sh made" in (
        refused.stderr)
