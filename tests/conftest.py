"""Fixtures shared across test folders: a real Ray head with its dashboard and token auth, and
tiny diffusers pipelines saved once per session (no downloads; see generate/tiny_*.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Weights come from disk only: never from a hub (in this process, and in the Ray workers and
# renders it starts, which inherit its environment).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "generate"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """tiny_weights(name) -> folder of a saved tiny pipeline, built on first use."""
    import importlib

    if str(TINY) not in sys.path:
        sys.path.insert(0, str(TINY))
    # Every generate/tiny_*.py contributes its BUILDERS (one module per model family).
    builders = {}
    for module in sorted(TINY.glob("tiny_*.py")):
        builders.update(importlib.import_module(module.stem).BUILDERS)
    root = tmp_path_factory.mktemp("tiny-pipelines")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = builders[name](root / name)
        return built[name]

    return get


@dataclass
class Head:
    address: str  # the dashboard's http:// address, as `previz submit --address` takes it
    token: str
    folder: str

    def client(self):
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.address, headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture(scope="session")
def ray_head() -> Iterator[Head]:
    """A head plus one worker node with two logical GPUs, started by
    cluster/local/start-local-cluster.sh (own temp dir, own ports, token auth on) and stopped by
    the pid file it wrote — never `ray stop`."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    started = subprocess.run([str(ROOT / "cluster/local/start-local-cluster.sh"), "--workers", "1",
                              "--gpus-per-worker", "2", "--cpus-per-worker", "2"],
                             env=env, capture_output=True, text=True, timeout=240)
    match = re.search(r"folder:\s+(\S+)", started.stdout)
    assert started.returncode == 0 and match, started.stdout + started.stderr
    folder = match[1]
    try:
        head = Head((Path(folder) / "address").read_text().strip(),
                    (Path(folder) / "auth_token").read_text().strip(), folder)
        _wait_until_jobs_api_ready(head)
        yield head
    finally:
        subprocess.run([str(ROOT / "cluster/local/stop-local-cluster.sh"), folder],
                       capture_output=True, timeout=120)


def _wait_until_jobs_api_ready(head: Head) -> None:
    """The dashboard answers before its job agent does: wait for a trivial job to run."""
    from ray.job_submission import JobStatus

    limit = time.monotonic() + 120
    while True:
        try:
            client = head.client()
            probe = client.submit_job(entrypoint="true")
            break
        except Exception:
            if time.monotonic() > limit:
                raise
            time.sleep(1)
    while client.get_job_status(probe) not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        assert time.monotonic() < limit, "the Jobs API never ran a job"
        time.sleep(0.5)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    """A throw-away CA and a C2PA signing certificate it issued (credentials_support)."""
    from credentials_support import make_ca

    return make_ca(tmp_path_factory.mktemp("test-ca"))
