"""Every KubeRay resource previz ships or exports, checked as strict `kubectl apply` checks it:
against the openAPIV3Schema of KubeRay's own CRD for the version cluster/README.md installs,
unknown fields as errors (only what the CRD marks `x-kubernetes-preserve-unknown-fields` stays
open). The CRDs are KubeRay's files, unchanged, in ../shared/ref/kuberay-crds/."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

from previz.schedule.export import export_job
from previz.schedule.spec import load_job

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT.parent / "shared" / "ref" / "kuberay-crds"
KINDS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayCronJob": "raycronjobs"}

pytestmark = pytest.mark.skipif(not CRDS.is_dir(), reason=f"no KubeRay CRDs at {CRDS}")


def installed_version() -> str:
    """The KubeRay version the cluster README's helm command installs."""
    text = (ROOT / "cluster" / "README.md").read_text()
    found = set(re.findall(r"kuberay/kuberay-operator --version (\d+\.\d+\.\d+)", text))
    assert len(found) == 1, f"the README installs {found or 'no'} KubeRay version"
    return found.pop()


@cache
def validator(version: str, kind: str) -> jsonschema.protocols.Validator:
    crd = yaml.load((CRDS / f"v{version}-{KINDS[kind]}.yaml").read_text(), Loader=yaml.CSafeLoader)
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(strict(served["schema"]["openAPIV3Schema"]))


def strict(schema: dict) -> dict:
    """The structural schema as the API server applies it, in JSON Schema: unknown fields are
    errors, `nullable` admits null, int-or-string admits both, `metadata` is ObjectMeta (the
    API server checks it, not the CRD)."""
    schema = copy.deepcopy(schema)

    def walk(node: dict, path: tuple) -> None:
        if node.get("x-kubernetes-int-or-string"):
            node.setdefault("type", ["integer", "string"])
        if node.get("nullable") and "type" in node:
            node["type"] = [node["type"], "null"] if isinstance(node["type"], str) \
                else [*node["type"], "null"]
        for name, child in node.get("properties", {}).items():
            if name == "metadata" and child.get("type") == "object" and "properties" not in child:
                continue
            walk(child, path + (name,))
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + ("[]",))
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], path + ("*",))
        for keyword in ("allOf", "anyOf", "oneOf"):
            for child in node.get(keyword, []):
                walk(child, path)
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False

    walk(schema, ())
    return schema


def problems(document: dict, version: str) -> list[str]:
    found = validator(version, document["kind"]).iter_errors(document)
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in found)


def shipped() -> list[tuple[str, dict]]:
    """(where, document) of every KubeRay resource in cluster/ and every Kubernetes export."""
    documents = []
    for path in sorted((ROOT / "cluster").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") in KINDS:
                documents.append((str(path.relative_to(ROOT)), document))
    for job in sorted((ROOT / "jobs").glob("*.yaml")):
        for text in export_job(load_job(job), "kubernetes").values():
            documents.append((f"previz jobs export {job.name} --to kubernetes",
                              yaml.safe_load(text)))
    return documents


SHIPPED = shipped()


def test_every_kind_is_checked():
    assert {d["kind"] for _, d in SHIPPED} == set(KINDS)


@pytest.mark.parametrize(("where", "document"), SHIPPED, ids=[w for w, _ in SHIPPED])
def test_what_previz_ships_is_what_the_installed_kuberay_accepts(where, document):
    assert problems(document, installed_version()) == []


def test_a_field_the_crd_does_not_have_is_refused():
    """The check can fail: a seeded unknown field, and `timeZone` on a RayCronJob for KubeRay
    1.6.0 (the field first ships in 1.7.0)."""
    cron = next(d for _, d in SHIPPED if d["kind"] == "RayCronJob")
    seeded = copy.deepcopy(cron)
    seeded["spec"]["jobTemplate"]["rayClusterSpec"]["headGroupSpec"]["rayStartParamz"] = {}
    assert problems(seeded, installed_version()) == [
        "spec.jobTemplate.rayClusterSpec.headGroupSpec: Additional properties are not allowed "
        "('rayStartParamz' was unexpected)"]
    assert "timeZone" in cron["spec"]
    assert problems(cron, "1.6.0") == [
        "spec: Additional properties are not allowed ('timeZone' was unexpected)"]
