"""KubeRay building blocks shared by `previz jobs export --to kubernetes` and the manifests in
`cluster/kuberay/` (a test keeps the two identical).

Security, everywhere: token authentication on (KubeRay `authOptions`, the token in a Secret), and
the head's dashboard reachable only inside the cluster (a ClusterIP service, no Ingress, no
LoadBalancer). The dashboard is also the Jobs API: whoever reaches it runs code on every GPU
node, with the store's credentials and the weights in reach.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "RAY_VERSION",
    "DEFAULT_IMAGE",
    "NAMESPACE",
    "PROJECT_MOUNT",
    "WEIGHTS_MOUNT",
    "TOKEN_SECRET",
    "STORE_SECRET",
    "WEBHOOK_SECRET",
    "ray_cluster_spec",
    "worker_group",
]

RAY_VERSION = "2.60.0"
DEFAULT_IMAGE = "ghcr.io/your-studio/previz-worker:0.1.0"
NAMESPACE = "previz"
PROJECT_MOUNT = "/mnt/previz/project"  # jobs/ and storyboards/ (a read-only shared volume)
WEIGHTS_MOUNT = "/mnt/models"  # model weights (a read-only shared volume)
TOKEN_SECRET = "previz-ray-token"  # key `auth_token`
STORE_SECRET = "previz-store"  # optional: AWS_* for the store when no IAM role is bound
WEBHOOK_SECRET = "previz-webhooks"  # optional: the variables `url_env:` webhooks name


def ray_cluster_spec(image: str = DEFAULT_IMAGE, *, priority_class: str | None = None,
                     project_claim: str = "previz-project",
                     weights_claim: str = "previz-weights") -> dict[str, Any]:
    """A RayCluster spec: CPU head, autoscaled spot-friendly GPU groups (L4 for 1.3B-class
    models, H100 for 14B-class), token auth, dashboard private."""
    volumes = [
        {"name": "project", "persistentVolumeClaim": {"claimName": project_claim,
                                                       "readOnly": True}},
        {"name": "weights", "persistentVolumeClaim": {"claimName": weights_claim,
                                                       "readOnly": True}},
    ]
    head = {
        "serviceType": "ClusterIP",
        "rayStartParams": {
            # Renders run on the GPU workers; the head only coordinates and drives jobs.
            "num-cpus": "0",
            "num-gpus": "0",
            # Inside the pod network only: reach it with `kubectl port-forward`, never expose it.
            "dashboard-host": "0.0.0.0",
        },
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "previz",
                                    "app.kubernetes.io/component": "ray-head"}},
            "spec": _pod_spec(priority_class, volumes, {
                "name": "ray-head",
                "image": image,
                "ports": [{"containerPort": 6379, "name": "gcs-server"},
                          {"containerPort": 8265, "name": "dashboard"},
                          {"containerPort": 10001, "name": "client"}],
                "resources": {"requests": {"cpu": "4", "memory": "16Gi"},
                              "limits": {"cpu": "4", "memory": "16Gi"}},
            }),
        },
    }
    return {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": 600},
        "authOptions": {"mode": "token", "secretName": TOKEN_SECRET},
        "headGroupSpec": head,
        "workerGroupSpecs": [
            worker_group("gpu-l4", image, product="NVIDIA-L4", max_replicas=8, cpu="8",
                         memory="32Gi", priority_class=priority_class, volumes=volumes),
            worker_group("gpu-h100", image, product="NVIDIA-H100-80GB-HBM3", max_replicas=4,
                         cpu="16", memory="180Gi", priority_class=priority_class,
                         volumes=volumes),
        ],
    }


def worker_group(name: str, image: str, *, product: str, max_replicas: int, cpu: str,
                 memory: str, priority_class: str | None = None,
                 volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One autoscaled GPU worker group: one GPU per pod, scaled from zero, spot preferred."""
    spec = _pod_spec(priority_class, volumes or [], {
        "name": "ray-worker",
        "image": image,
        "resources": {"requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": "1"},
                      "limits": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": "1"}},
    })
    spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    spec["tolerations"] = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "karpenter.sh/capacity-type", "operator": "Equal", "value": "spot",
         "effect": "NoSchedule"},
    ]
    # Spot when there is spot: a lost node costs one shot, which the engine retries elsewhere.
    spec["affinity"] = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]}}]}}
    return {
        "groupName": name,
        "replicas": 0,
        "minReplicas": 0,
        "maxReplicas": max_replicas,
        "rayStartParams": {},
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "previz",
                                    "app.kubernetes.io/component": f"ray-worker-{name}"}},
            "spec": spec,
        },
    }


def _pod_spec(priority_class: str | None, volumes: list[dict[str, Any]],
              container: dict[str, Any]) -> dict[str, Any]:
    container = {
        **container,
        # Storyboards name weight folders under /mnt/models; hub ids resolve from the
        # Hugging Face cache kept on the same volume, offline (workers never download).
        "env": [{"name": "HF_HOME", "value": f"{WEIGHTS_MOUNT}/huggingface"},
                {"name": "HF_HUB_OFFLINE", "value": "1"}],
        "envFrom": [{"secretRef": {"name": STORE_SECRET, "optional": True}},
                    {"secretRef": {"name": WEBHOOK_SECRET, "optional": True}}],
        "volumeMounts": [{"name": "project", "mountPath": PROJECT_MOUNT, "readOnly": True},
                         {"name": "weights", "mountPath": WEIGHTS_MOUNT, "readOnly": True},
                         {"name": "shm", "mountPath": "/dev/shm"}],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    spec: dict[str, Any] = {
        "serviceAccountName": "previz",
        "containers": [container],
        "volumes": [*copy.deepcopy(volumes), {"name": "shm", "emptyDir": {"medium": "Memory"}}],
    }
    if priority_class:
        spec["priorityClassName"] = priority_class
    return spec
