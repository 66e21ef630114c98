"""The AWS cluster launcher config passes Ray's own validation, and keeps its promises: token
auth on every node, no public dashboard, spot GPU workers of the right classes."""

import copy
from pathlib import Path

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
    for rule in config["provider"]["security_group"]["IpPermissions"]:
        for ip_range in rule["IpRanges"]:
            assert ip_range["CidrIp"] != "0.0.0.0/0"
    text = CONFIG.read_text()
    assert "not exposed publicly" in text and "Jobs API" in text  # the reason, beside it
