"""The KubeRay manifests parse and carry what KubeRay requires, with token auth on and the
dashboard private; the shipped files stay identical to what previz generates."""

from pathlib import Path

import pytest
import yaml

from previz.schedule.export import export_job
from previz.schedule.kube import ray_cluster_spec
from previz.schedule.spec import load_job

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "cluster" / "kuberay"


def manifest(name: str) -> dict:
    return yaml.safe_load((KUBERAY / name).read_text())


def check_ray_cluster_spec(spec: dict) -> None:
    """The fields KubeRay's RayCluster CRD requires, and the security settings previz promises."""
    assert spec["authOptions"] == {"mode": "token", "secretName": "previz-ray-token"}
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"  # never LoadBalancer/NodePort
    check_pod(head["template"])
    assert spec["workerGroupSpecs"], "no GPU workers"
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert 0 <= group["minReplicas"] <= group["maxReplicas"]
        container = check_pod(group["template"])
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for value in head["rayStartParams"].values():
        assert isinstance(value, str)  # KubeRay wants strings


def check_pod(template: dict) -> dict:
    containers = template["spec"]["containers"]
    assert containers and all(c["name"] and c["image"] for c in containers)
    return containers[0]


def test_raycluster():
    cluster = manifest("raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    check_ray_cluster_spec(cluster["spec"])
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"gpu-l4", "gpu-h100"}
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    # The file is the code's spec, with comments.
    assert cluster["spec"] == ray_cluster_spec()


def test_rayjob():
    job = manifest("rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["entrypoint"].startswith("cd /mnt/previz/project/storyboards && previz "
                                                "render demo.yaml")
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    check_ray_cluster_spec(job["spec"]["rayClusterSpec"])
    assert job["spec"]["rayClusterSpec"] == ray_cluster_spec()


def test_raycronjob_is_the_export_of_the_nightly_job():
    cron = manifest("raycronjob.yaml")
    assert (cron["apiVersion"], cron["kind"]) == ("ray.io/v1", "RayCronJob")
    assert cron["spec"]["schedule"] == "30 19 * * 1-5"
    assert cron["spec"]["timeZone"] == "Europe/London"
    template = cron["spec"]["jobTemplate"]
    assert template["entrypoint"] and template["shutdownAfterJobFinishes"] is True
    # the deadline holds on this route too, in the job's zone, and nothing outlives the night:
    # KubeRay stops a slot an hour past its 11.5-hour window (plus an hour for a clock change)
    # and deletes its cluster ten minutes after the render
    assert template["entrypoint"].endswith("--json --deadline '07:00 Europe/London'")
    assert template["activeDeadlineSeconds"] == (11.5 + 1 + 1) * 3600
    assert template["ttlSecondsAfterFinished"] == 600
    check_ray_cluster_spec(template["rayClusterSpec"])
    exported = export_job(load_job(ROOT / "jobs" / "lighthouse_nightly.yaml"), "kubernetes")
    assert yaml.safe_load(next(iter(exported.values()))) == cron


@pytest.mark.parametrize("to", ["kubernetes", "kubernetes-cronjob"])
def test_exports_of_the_weekly_job(to):
    text = next(iter(export_job(load_job(ROOT / "jobs" / "film_weekly.yaml"), to).values()))
    document = yaml.safe_load(text)
    assert "&id" not in text and "*id" not in text  # plain YAML, no anchors
    if to == "kubernetes":
        check_ray_cluster_spec(document["spec"]["jobTemplate"]["rayClusterSpec"])
        assert document["spec"]["jobTemplate"]["entrypoint"].count("previz render") == 3
    else:
        pod = document["spec"]["jobTemplate"]["spec"]["template"]
        assert check_pod(pod)["command"][:3] == ["previz", "jobs", "run"]


def test_base_resources():
    documents = list(yaml.safe_load_all((KUBERAY / "base.yaml").read_text()))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert {("Namespace", "previz"), ("ServiceAccount", "previz"),
            ("PersistentVolumeClaim", "previz-project"),
            ("PersistentVolumeClaim", "previz-weights"), ("PriorityClass", "previz-high"),
            ("PriorityClass", "previz-normal"), ("PriorityClass", "previz-low"),
            ("NetworkPolicy", "previz-ray-head-private")} == kinds
    for name in ("raycluster.yaml", "rayjob.yaml", "raycronjob.yaml", "base.yaml"):
        for document in yaml.safe_load_all((KUBERAY / name).read_text()):
            assert document["kind"] not in ("Ingress", "Secret", "Service")
            values = set(_values(document))
            assert not values & {"LoadBalancer", "NodePort"}  # the dashboard stays private


def _values(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _values(value)
    elif isinstance(node, str):
        yield node
