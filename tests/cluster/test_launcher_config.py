"""The AWS cluster launcher config passes Ray's own validation, and keeps its promises: token
auth on every node, no public dashboard, spot GPU workers of the right classes."""

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "cluster" / "aws" / "previz-cluster.yaml"


def load() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_ray_validates_and_prepares_the_config():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load()
    validate_config(config)  # ray/autoscaler/ray-schema.json plus Ray's own cross-checks
    prepared = prepare_config(copy.deepcopy(config))  # merged with Ray's AWS defaults
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] == "ray.head.cpu"


def test_cpu_head_and_gpu_worker_classes():
    config = load()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0} and "GPU" not in head["resources"]
    gpus = {name: spec["resources"] for name, spec in types.items() if name != "ray.head.cpu"}
    assert {"accelerator_type:L4", "accelerator_type:A10G", "accelerator_type:H100"} <= {
        key for resources in gpus.values() for key in resources}
    assert types["gpu.h100"]["node_config"]["InstanceType"].startswith("p5.")
    for name in gpus:
        assert types[name]["min_workers"] == 0  # autoscaled from zero
        assert types[name]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert sum(types[name]["max_workers"] for name in gpus) <= config["max_workers"]


def test_token_auth_everywhere_and_no_public_dashboard():
    config = load()
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert any("RAY_AUTH_TOKEN=" in command and "ssm" in command for command in commands)
    assert config["provider"]["use_internal_ips"] is True
    text = CONFIG.read_text()
    assert "not exposed publicly" in text and "Jobs API" in text  # the reason, beside it


def test_ray_makes_no_security_group_of_its_own():
    """Ray's launcher opens SSH to 0.0.0.0/0 in any group it makes: every node type names the
    studio's own group, so Ray's bootstrap leaves groups alone (run here: it returns before any
    AWS call)."""
    from ray.autoscaler._private.aws.config import _configure_security_group
    from ray.autoscaler._private.util import prepare_config

    config = load()
    assert "security_group" not in config["provider"]  # ignored once groups are named
    prepared = prepare_config(copy.deepcopy(config))
    before = copy.deepcopy(prepared)
    assert _configure_security_group(prepared) == before
    for name, node_type in prepared["available_node_types"].items():
        assert node_type["node_config"]["SecurityGroupIds"], name


def test_every_node_boots_a_current_gpu_image():
    """Not Ray's fallback (a Deep Learning AMI on Ubuntu 18.04 with CUDA 11): AWS's current Deep
    Learning Base GPU AMI on Ubuntu 22.04, which EC2 looks up from its public SSM parameter."""
    from ray.autoscaler._private.aws.config import DEFAULT_AMI, _check_ami
    from ray.autoscaler._private.util import prepare_config

    prepared = prepare_config(load())
    _check_ami(prepared)  # what `ray up` does: fills in its default where there is no ImageId
    images = {node_type["node_config"]["ImageId"]
              for node_type in prepared["available_node_types"].values()}
    assert images == {"resolve:ssm:/aws/service/deeplearning/ami/x86_64/"
                      "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"}
    assert not images & set(DEFAULT_AMI.values())


def test_every_node_logs_in_to_ecr_before_the_image_is_pulled():
    config = load()
    registry = config["docker"]["image"].split("/")[0]
    assert registry.endswith(".amazonaws.com")
    for name, node_type in config["available_node_types"].items():
        commands = node_type.get("initialization_commands", config["initialization_commands"])
        assert any("aws ecr get-login-password" in c and f"--password-stdin {registry}" in c
                   for c in commands), name


@pytest.mark.parametrize("commands", ["head_start_ray_commands", "worker_start_ray_commands"])
def test_a_failing_token_lookup_stops_ray_start(commands, tmp_path):
    """Run as bash runs it on a node, with the SSM read failing: `ray start` must not run (an
    `export VAR="$(…)"` would have started Ray with an empty token)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "python").write_text("#!/bin/sh\necho 'AccessDenied' >&2\nexit 1\n")
    (stubs / "ray").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/ray-started\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    # (`ulimit -n 65536` as a no-op: raising the limit needs the node's privileges, not ours)
    start = "ulimit() { :; }; " + next(c for c in load()[commands] if "ray start" in c)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "RAY_HEAD_IP": "10.0.0.1"}
    done = subprocess.run(["bash", "-c", start], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "AccessDenied" in done.stderr
    assert not (tmp_path / "ray-started").exists()
    # and with the read working, Ray starts with the token in its environment
    (stubs / "python").write_text("#!/bin/sh\necho token-from-ssm\n")
    (stubs / "ray").write_text(f"#!/bin/sh\necho \"$RAY_AUTH_TOKEN\" > {tmp_path}/ray-started\n")
    done = subprocess.run(["bash", "-c", start], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ray-started").read_text().strip() == "token-from-ssm"
