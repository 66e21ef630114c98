"""The worker image's Dockerfile: CUDA, torch and previz in, weights and secrets out."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "cluster" / "docker"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest))
    return rows


def test_dockerfile_builds_cuda_torch_and_previz():
    rows = instructions()
    assert rows[0][0] == "ARG" and "nvidia/cuda" in rows[0][1] and "cudnn" in rows[0][1]
    runs = " ".join(rest for keyword, rest in rows if keyword == "RUN")
    assert 'pip install "torch==${TORCH_VERSION}"' in runs
    assert 'pip install "/src[models]"' in runs
    assert ("USER", "1000") in rows  # numeric, for Kubernetes runAsNonRoot
    assert not any(keyword == "ENV" and re.search(r"TOKEN|SECRET|AWS_", rest)
                   for keyword, rest in rows)
    copied = " ".join(rest for keyword, rest in rows if keyword == "COPY")
    assert "models" not in copied.replace("[models", "")  # weights are never baked in


def test_scripts_are_valid_shell():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    for script in ("entrypoint.sh", "sync-weights.sh"):
        subprocess.run([bash, "-n", str(DOCKER / script)], check=True)
    refused = subprocess.run([bash, str(DOCKER / "sync-weights.sh"), "https://example.com/x"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "not an s3:// URI" in refused.stderr
