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
    assert 'pip install -c /src/constraints.txt "/src[models]"' in runs
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


def test_the_image_installs_what_was_tested_and_the_manifests_ray():
    """The image's pins are the versions installed where these tests run, and its Ray is the
    rayVersion every KubeRay manifest names."""
    from importlib.metadata import version

    from previz.schedule.kube import RAY_VERSION

    pins = dict(line.split("==") for line in (DOCKER / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert pins["ray"] == RAY_VERSION
    assert {"ray", "torch", "diffusers", "transformers"} <= set(pins)
    tested = {name: version(name).split("+")[0] for name in pins}
    assert pins == tested, "update cluster/docker/constraints.txt to the tested versions"
    # and the build context lets every file the Dockerfile copies in
    allowed = (DOCKER / "Dockerfile.dockerignore").read_text()
    for _, rest in (row for row in instructions() if row[0] == "COPY"):
        for source in rest.split()[:-1]:
            if source.startswith("cluster/"):
                assert f"!{source}" in allowed, source
