"""`previz doctor`: what a render needs, checked from the TD's seat before the night it fires.

Facts are gathered here and on every node of the cluster (by a Ray task pinned to the node, so
it sees that node's credentials, driver, disks and ffmpeg, not this shell's), then judged by the
pure `judge_*` functions: what counts as a failure is decided in one place, without a cluster.

    ok    ffmpeg   this machine            ffmpeg version 7.0.2-static: libx264, aac, prores_ks, dnxhd
    FAIL  store    node 10.0.3.7 (4f2a91)  s3://studio/previz: no usable credentials on this node …
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from previz import __version__
from previz.errors import PrevizError

__all__ = ["Status", "Check", "WeightsNeed", "run_doctor", "format_checks", "node_facts",
           "judge_ffmpeg", "judge_gpus", "judge_store", "judge_weights", "judge_versions",
           "judge_signing",
           "checks_json", "needs_from_json"]

HERE = "this machine"
PROBE_SECONDS = 90.0  # a node that has not answered by then is reported, not waited for
JOB_SECONDS = 300.0
# The encoders and containers previz's media need: takes, cuts and review copies are H.264 in
# MP4 joined with the concat demuxer, with AAC sound; the editorial media are optional.
REQUIRED_FFMPEG = {"libx264": "every take and cut", "aac": "the cut's sound",
                   "mp4": "the cut's container", "concat": "joining the cut"}
OPTIONAL_FFMPEG = {"prores_ks": "--editorial-media prores422",
                   "dnxhd": "--editorial-media dnxhr-hq", "mov": "--editorial-media"}


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"

    @property
    def is_failure(self) -> bool:
        return self is Status.FAIL


@dataclass(frozen=True)
class Check:
    name: str  # ffmpeg, store, signing, ray, versions, gpus, weights
    where: str  # "this machine", "cluster", or a node
    status: Status
    detail: str


@dataclass(frozen=True)
class WeightsNeed:
    """A model's weights a render will load: a folder on the workers or a hub id."""

    model: str
    location: str
    revision: str | None
    gpu_memory_gb: float
    named: bool  # by a storyboard (missing: a failure), or the catalog's default (a warning)


def run_doctor(storyboards: Iterable[str] = (), address: str | None = None,
               store_uri: str | None = None,
               needs: list[WeightsNeed] | None = None) -> list[Check]:
    """Every check, in order.

    1. this machine: ffmpeg, and the store written, read and removed with this shell's
       credentials;
    2. the weights to look for: those the storyboards' models load, else every catalog model's;
    3. the cluster, reached with the token: a dashboard URL runs steps 1, 3 and 4 there as a Ray
       Job; a GCS address (or none: an embedded Ray, as a render starts) is joined from here;
    4. every alive node, by a task pinned to it: versions, GPUs with their driver and CUDA,
       ffmpeg, the store with the node's own credentials (and seen from here: shared), weights.
    """
    from previz.store.registry import DEFAULT_STORE

    store_uri = store_uri or DEFAULT_STORE
    needs = weights_needs(storyboards) if needs is None else needs
    if address and address.startswith(("http://", "https://")):
        return _doctor_as_job(address, store_uri, needs)
    # 1. this machine
    checks = [judge_ffmpeg(ffmpeg_facts(), HERE), judge_store(store_facts(store_uri), HERE),
              judge_signing(signing_facts(), None, HERE)]
    # 3-4. the cluster and its nodes
    return checks + cluster_checks(address, store_uri, needs)


def weights_needs(storyboards: Iterable[str]) -> list[WeightsNeed]:
    """The weights of the models the storyboards use (as their plans resolve them), else of every
    GPU model in the catalog from its hub repository."""
    from previz.catalog import CATALOG, model_spec

    needs: dict[tuple[str, str], WeightsNeed] = {}
    paths = list(storyboards)
    if paths:
        from previz.plan import plan_from_storyboard
        from previz.storyboard import load_storyboard

        for path in paths:
            for task in plan_from_storyboard(load_storyboard(path)).tasks():
                spec = model_spec(task.model)
                if task.weights and spec.needs_gpu:
                    needs[task.model, task.weights] = WeightsNeed(
                        task.model, task.weights, task.revision, spec.gpu_memory_gb, True)
        return list(needs.values())
    return [WeightsNeed(spec.name, spec.repo, spec.revision, spec.gpu_memory_gb, False)
            for spec in CATALOG.values() if spec.needs_gpu and spec.repo]


def cluster_checks(address: str | None, store_uri: str, needs: list[WeightsNeed]) -> list[Check]:
    import ray

    from previz.engine.render import ray_connection

    try:
        with ray_connection(address):
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            checks = [_cluster_summary(address, nodes)]
            answers = _probe_nodes(nodes, store_uri, needs)
            checks += _judge_nodes(nodes, answers, store_uri, needs)
    except PrevizError as error:
        return [Check("ray", "cluster", Status.FAIL, str(error))]
    return checks


def _cluster_summary(address: str | None, nodes: list[dict[str, Any]]) -> Check:
    import ray

    gpus = sum(n["Resources"].get("GPU", 0) for n in nodes)
    cpus = sum(n["Resources"].get("CPU", 0) for n in nodes)
    how = (f"{address or os.environ.get('RAY_ADDRESS')}: reachable, token accepted"
           if address or os.environ.get("RAY_ADDRESS")
           else "no --address: renders start Ray on this machine (started here to check it)")
    return Check("ray", "cluster", Status.OK,
                 f"{how}; Ray {ray.__version__}, {len(nodes)} node(s) alive, {gpus:g} GPU(s), "
                 f"{cpus:g} CPU(s)")


def _probe_nodes(nodes: list[dict[str, Any]], store_uri: str,
                 needs: list[WeightsNeed]) -> dict[str, dict[str, Any]]:
    """Each node's facts, from a task pinned to it; a node that does not answer in time is
    missing from the result."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(node_facts)
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote(store_uri, [asdict(n) for n in needs]): node["NodeID"]
        for node in nodes}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_SECONDS)
    for ref in late:
        ray.cancel(ref, force=True)
    answers = {}
    for ref in ready:
        try:
            answers[refs[ref]] = ray.get(ref)
        except Exception as error:  # noqa: BLE001 - the node's worker died: say so, go on
            answers[refs[ref]] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    return answers


def _judge_nodes(nodes: list[dict[str, Any]], answers: dict[str, dict[str, Any]],
                 store_uri: str, needs: list[WeightsNeed]) -> list[Check]:
    checks: list[Check] = []
    here_signs = signing_facts().get("subject")
    any_gpu = any(n["Resources"].get("GPU", 0) for n in nodes)
    if not any_gpu:
        checks.append(Check("gpus", "cluster", Status.FAIL if any(n.named for n in needs)
                            else Status.WARN,
                            "no GPUs on the cluster: only CPU models (draft, synthetic, "
                            "--draft renders) can run"))
    for node in sorted(nodes, key=lambda n: (not _is_head(n), n["NodeManagerAddress"])):
        where = f"node {node['NodeManagerAddress']} ({node['NodeID'][:6]}"
        where += ", head)" if _is_head(node) else ")"
        facts = answers.get(node["NodeID"])
        if facts is None:
            checks.append(Check("node", where, Status.FAIL,
                                f"did not answer in {PROBE_SECONDS:g} s — its raylet may be "
                                "overloaded, or unreachable from the head"))
            continue
        if "error" in facts:
            checks.append(Check("node", where, Status.FAIL, f"its check failed: {facts['error']}"))
            continue
        gpus = node["Resources"].get("GPU", 0)
        checks.append(judge_versions(facts, where))
        if gpus:
            checks.append(judge_gpus(facts["gpus"], gpus, needs, where))
        checks.append(judge_ffmpeg(facts["ffmpeg"], where))
        store = facts["store"]
        if store.get("ok"):
            store = {**store, "shared": _seen_here(store_uri, store["key"])}
        checks.append(judge_store(store, where))
        # (logical GPUs, with no driver, run no model that loads weights: the gpus line said so)
        real_gpus = facts["gpus"].get("driver") is not None
        if gpus and needs and (real_gpus or any(n.named for n in needs)):
            checks.append(judge_weights(facts["weights"], facts["hub_offline"], where))
        if here_signs or facts["signing"].get("subject") or "error" in facts["signing"]:
            checks.append(judge_signing(facts["signing"], here_signs, where))
    return checks


def _is_head(node: dict[str, Any]) -> bool:
    return "node:__internal_head__" in node["Resources"]


def _seen_here(store_uri: str, key: str) -> bool | None:
    """Whether what a node wrote is in the store this machine sees (a local path on a node
    without the shared disk would be that node's own folder), and removes it; None when this
    machine cannot look (its own store line says why)."""
    from previz.store import open_store

    try:
        store = open_store(store_uri)
        seen = store.exists(key)
    except Exception:  # noqa: BLE001 - told on this machine's own store line
        return None
    with contextlib.suppress(Exception):  # a leftover probe object is harmless
        store.delete(key)
    return seen


# -- facts: gathered on one machine; plain data (they travel back from the nodes) ---------------

def node_facts(store_uri: str, needs: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything doctor asks of one node, run on it."""
    import ray

    return {"ray": ray.__version__, "previz": __version__,
            "python": platform.python_version(), "ffmpeg": ffmpeg_facts(),
            "gpus": gpu_facts(), "store": store_facts(store_uri, keep=True),
            "weights": [weights_facts(WeightsNeed(**need)) for need in needs],
            "signing": signing_facts(),
            "hub_offline": os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")}


def signing_facts() -> dict[str, Any]:
    """Whether this process would sign (content credentials), and as whom."""
    from previz.media.credentials import CredentialsError, signing_from_env

    try:
        signing = signing_from_env()
    except CredentialsError as error:
        return {"error": str(error)}
    return {"subject": signing.subject if signing else None}


def ffmpeg_facts() -> dict[str, Any]:
    from previz.media.encode import encoder_identity, ffmpeg_exe

    try:
        exe = ffmpeg_exe()
        found: set[str] = set()
        for listing in ("-encoders", "-muxers", "-demuxers"):
            done = subprocess.run([exe, "-hide_banner", listing], capture_output=True, text=True,
                                  timeout=30, stdin=subprocess.DEVNULL, errors="replace")
            found |= {line.split()[1] for line in done.stdout.splitlines()
                      if len(line.split()) > 1 and line.startswith(" ")}
        version = encoder_identity().partition(" Copyright")[0].replace(" version ", " ")
    except (OSError, subprocess.SubprocessError, ImportError) as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {"exe": exe, "version": version,
            "have": sorted(found & (REQUIRED_FFMPEG.keys() | OPTIONAL_FFMPEG.keys()))}


def gpu_facts() -> dict[str, Any]:
    """The driver's view (nvidia-smi sees every GPU, whatever CUDA_VISIBLE_DEVICES says) and
    torch's build; torch is not asked to initialise CUDA, which could take a GPU in use."""
    facts: dict[str, Any] = {"torch": None, "torch_cuda": None}
    try:
        import torch

        facts["torch"], facts["torch_cuda"] = torch.__version__, torch.version.cuda
    except ImportError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {**facts, "driver": None}
    try:
        query = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True,
                               timeout=60, check=True)
        banner = subprocess.run([smi], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return {**facts, "driver": "", "error": detail.strip().splitlines()[-1] if detail else ""}
    cards = [[part.strip() for part in line.split(",")] for line in query.stdout.splitlines()
             if line.strip()]
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", banner)
    return {**facts, "driver": cards[0][2] if cards else "", "cuda": cuda[1] if cuda else None,
            "cards": [{"name": c[0], "memory_gb": round(float(c[1]) / 1024, 1)} for c in cards]}


def store_facts(store_uri: str, *, keep: bool = False) -> dict[str, Any]:
    """Write, read back and (unless `keep`: the caller checks it is shared, then removes it)
    remove a small object, with this process's credentials."""
    from previz.store import NoCredentials, StoreError, open_store

    key = f"doctor/{secrets.token_hex(8)}.probe"
    data = f"previz doctor {platform.node()} {time.time()}".encode()
    try:
        store = open_store(store_uri)
        store.put_bytes(key, data, create_only=True)
        if store.get_bytes(key) != data:
            return {"ok": False, "kind": "store", "uri": store.uri,
                    "message": "read back other bytes than were written"}
        if not keep:
            store.delete(key)
    except NoCredentials as error:
        return {"ok": False, "kind": "credentials", "uri": store_uri, "message": str(error)}
    except StoreError as error:
        return {"ok": False, "kind": "store", "uri": store_uri, "message": str(error)}
    except OSError as error:
        return {"ok": False, "kind": "store", "uri": store_uri, "message": str(error)}
    return {"ok": True, "uri": store.uri, "key": key}


def weights_facts(need: WeightsNeed) -> dict[str, Any]:
    """Where a model's weights are on this machine: a diffusers folder (its model_index.json and
    the component folders it lists), or the hub id's snapshot in the Hugging Face cache."""
    folder: Path | None = None
    if need.location.startswith(("/", "~")):
        folder = Path(need.location).expanduser()
        if not (folder / "model_index.json").is_file():
            return {"model": need.model, "found": False, "where": str(folder),
                    "named": need.named,
                    "why": "no such folder" if not folder.is_dir() else
                    "not a diffusers folder (no model_index.json)"}
    else:
        try:
            from huggingface_hub import constants, try_to_load_from_cache
        except ImportError:
            return {"model": need.model, "found": False, "where": need.location,
                    "named": need.named, "why": "huggingface_hub is not installed"}
        cached = try_to_load_from_cache(need.location, "model_index.json",
                                        revision=need.revision)
        if not isinstance(cached, str):
            return {"model": need.model, "found": False, "where": need.location,
                    "named": need.named,
                    "why": f"not in the Hugging Face cache ({constants.HF_HUB_CACHE})"}
        folder = Path(cached).parent
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError) as error:
        return {"model": need.model, "found": False, "where": str(folder), "named": need.named,
                "why": f"model_index.json unreadable ({error})"}
    missing = sorted(name for name, value in index.items()
                     if not name.startswith("_") and isinstance(value, list)
                     and value[-1] is not None and not (folder / name).is_dir())
    return {"model": need.model, "found": not missing, "where": str(folder), "named": need.named,
            "why": f"components missing: {', '.join(missing)}" if missing else ""}


# -- judging: facts to checks ------------------------------------------------------------------

def judge_ffmpeg(facts: dict[str, Any], where: str) -> Check:
    if "error" in facts:
        return Check("ffmpeg", where, Status.FAIL,
                     f"no usable ffmpeg ({facts['error']}) — install previz's dependencies "
                     "(imageio-ffmpeg ships one) or set PREVIZ_FFMPEG to an ffmpeg binary")
    have = set(facts["have"])
    missing = [f"{name} ({use})" for name, use in REQUIRED_FFMPEG.items() if name not in have]
    if missing:
        return Check("ffmpeg", where, Status.FAIL,
                     f"{facts['version']} ({facts['exe']}) lacks {', '.join(missing)} — set "
                     "PREVIZ_FFMPEG to a full build")
    optional = [f"{name} ({use})" for name, use in OPTIONAL_FFMPEG.items() if name not in have]
    detail = f"{facts['version']}: {', '.join(sorted(have))}"
    if optional:
        return Check("ffmpeg", where, Status.WARN, f"{detail}; lacks {', '.join(optional)}")
    return Check("ffmpeg", where, Status.OK, detail)


def judge_versions(facts: dict[str, Any], where: str) -> Check:
    import ray

    detail = f"Ray {facts['ray']}, previz {facts['previz']}, Python {facts['python']}"
    if facts["ray"] != ray.__version__:
        return Check("versions", where, Status.FAIL,
                     f"{detail}; this machine has Ray {ray.__version__} — install the same Ray "
                     "everywhere (cluster/docker/constraints.txt)")
    if facts["previz"] != __version__:
        return Check("versions", where, Status.WARN,
                     f"{detail}; this machine has previz {__version__} — takes rendered there "
                     "may not be what this version plans: rebuild the worker image")
    return Check("versions", where, Status.OK, detail)


def judge_gpus(facts: dict[str, Any], ray_gpus: float, needs: list[WeightsNeed],
               where: str) -> Check:
    """A GPU node: its driver, the CUDA the driver supports against the CUDA torch was built
    for, and whether its cards hold the storyboards' models."""
    needs_gpu = any(n.named for n in needs)
    if facts.get("driver") is None:
        return Check("gpus", where, Status.FAIL if needs_gpu else Status.WARN,
                     f"Ray offers {ray_gpus:g} GPU(s), but there is no NVIDIA driver "
                     "(nvidia-smi not found): logical GPUs — only CPU models (draft, synthetic) "
                     "render here")
    if facts.get("error") is not None or not facts.get("cards"):
        return Check("gpus", where, Status.FAIL,
                     f"nvidia-smi failed ({facts.get('error') or 'no GPUs listed'}) — the driver "
                     "is not loaded or does not match the kernel module; reboot or reinstall it")
    cards = facts["cards"]
    names = sorted({c["name"] for c in cards})
    smallest = min(c["memory_gb"] for c in cards)
    detail = (f"{len(cards)} x {', '.join(names)} ({smallest:g} GB), driver {facts['driver']} "
              f"(CUDA {facts.get('cuda') or '?'}); torch {facts.get('torch')}")
    if facts.get("torch") is None:
        return Check("gpus", where, Status.FAIL, f"{detail}: torch is not installed here")
    if facts.get("torch_cuda") is None:
        return Check("gpus", where, Status.FAIL,
                     f"{detail} is a CPU build — install the CUDA build of torch")
    detail += f" for CUDA {facts['torch_cuda']}"
    if facts.get("cuda") and _version(facts["cuda"]) < _version(facts["torch_cuda"]):
        return Check("gpus", where, Status.FAIL,
                     f"{detail}: the driver is older than torch's CUDA — update the driver")
    if ray_gpus > len(cards):
        return Check("gpus", where, Status.FAIL,
                     f"{detail}: Ray offers {ray_gpus:g} GPUs — start the node with "
                     f"--num-gpus {len(cards)}")
    too_big = sorted({n.model for n in needs if n.named and n.gpu_memory_gb > smallest})
    if too_big:
        return Check("gpus", where, Status.FAIL,
                     f"{detail}: too small for {', '.join(too_big)} (needs "
                     f"{max(n.gpu_memory_gb for n in needs if n.model in too_big):g} GB)")
    return Check("gpus", where, Status.OK, detail)


def judge_store(facts: dict[str, Any], where: str) -> Check:
    if facts.get("ok"):
        if facts.get("shared") is False:
            return Check("store", where, Status.FAIL,
                         f"{facts['uri']}: written on that node's own disk, not seen from here — "
                         "a folder store must be on a disk every node shares; use "
                         "s3://bucket/prefix otherwise")
        how = ("written, read and removed from this shell" if where == HERE else
               "written and read by the node with its own credentials, seen from here")
        return Check("store", where, Status.OK, f"{facts['uri']}: {how}")
    if facts.get("kind") == "credentials" and where != HERE:
        return Check("store", where, Status.FAIL,
                     f"{facts['uri']}: no usable credentials on this node for the store — give "
                     "the workers theirs: an instance profile or IAM role on the nodes, "
                     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment the nodes "
                     "were started with, or ~/.aws/credentials on every node")
    return Check("store", where, Status.FAIL, facts["message"])


def judge_weights(facts: list[dict[str, Any]], hub_offline: bool, where: str) -> Check:
    found = [f for f in facts if f["found"]]
    absent = [f for f in facts if not f["found"]]
    detail = f"{len(found)} of {len(facts)} models' weights here"
    if not absent:
        return Check("weights", where, Status.OK,
                     f"{detail}: {', '.join(f['model'] for f in found)}")
    named = [f for f in absent if f["named"]]
    shown = named or absent
    listed = "; ".join(f"{f['model']}: {f['where']} — {f['why']}" for f in shown[:3])
    listed += f"; and {len(shown) - 3} more" if len(shown) > 3 else ""
    if named or hub_offline:
        return Check("weights", where, Status.FAIL,
                     f"{detail}; {listed} — fill them as cluster/README.md says (hub ids "
                     "resolve from the Hugging Face cache when the hub is offline)")
    return Check("weights", where, Status.WARN,
                 f"{detail}; not cached: {', '.join(f['model'] for f in absent)} — a render "
                 "downloads them from the hub on first use, if this node can reach it")


def judge_signing(facts: dict[str, Any], here_signs: str | None, where: str) -> Check:
    """Content credentials: this machine signs cuts, every node signs the takes it renders."""
    if "error" in facts:
        return Check("signing", where, Status.FAIL, facts["error"])
    if facts["subject"]:
        return Check("signing", where, Status.OK, f"signs as {facts['subject']}")
    if here_signs:
        return Check("signing", where, Status.WARN,
                     f"no PREVIZ_C2PA_CERT/PREVIZ_C2PA_KEY here, though this machine signs as "
                     f"{here_signs}: takes rendered here will be unsigned")
    return Check("signing", where, Status.WARN,
                 "unsigned: no PREVIZ_C2PA_CERT and PREVIZ_C2PA_KEY (media carries no content "
                 "credentials)")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


# -- the Ray Job route: for a cluster reached only through its dashboard -----------------------

def _doctor_as_job(address: str, store_uri: str, needs: list[WeightsNeed]) -> list[Check]:
    """Run doctor as a Ray Job on the cluster (the only way in through `kubectl port-forward`
    or `ray dashboard`): its "this machine" is then the node the job's driver runs on."""
    import shlex

    from previz.engine.jobs import job_client

    try:
        client = job_client(address)
        client.list_jobs()  # the Jobs API answers with the token
    except Exception as error:  # noqa: BLE001 - PrevizError from job_client, or a 401
        return [Check("ray", "cluster", Status.FAIL, _first_line(error))]
    checks = [Check("ray", "cluster", Status.OK, f"{address}: Jobs API reachable, token accepted")]
    store_uri = store_uri if "://" in store_uri else str(Path(store_uri).resolve())
    command = ["previz", "doctor", "--json", "--store", store_uri,
               "--needs-json", json.dumps([asdict(n) for n in needs])]
    job = f"previz-doctor-{secrets.token_hex(4)}"
    try:
        client.submit_job(entrypoint=" ".join(shlex.quote(p) for p in command),
                          submission_id=job, metadata={"previz-doctor": "1"})
    except Exception as error:  # noqa: BLE001 - the Jobs API's refusals come in many types
        return checks + [Check("ray", "cluster", Status.FAIL,
                               f"the cluster would not run the doctor job: {_first_line(error)}")]
    limit = time.monotonic() + JOB_SECONDS
    while not client.get_job_status(job).is_terminal():
        if time.monotonic() > limit:
            client.stop_job(job)
            return checks + [Check("ray", "cluster", Status.FAIL,
                                   f"the doctor job {job} did not finish in {JOB_SECONDS:g} s "
                                   "— is the cluster out of CPUs for a job's driver?")]
        time.sleep(1.0)
    logs = client.get_job_logs(job)
    for line in reversed(logs.splitlines()):
        if line.startswith('{"checks"'):
            inner = [Check(c["name"], "the job's driver" if c["where"] == HERE else c["where"],
                           Status(c["status"]), c["detail"]) for c in json.loads(line)["checks"]]
            return checks + inner
    tail = " / ".join(logs.strip().splitlines()[-3:]) or "no output"
    return checks + [Check("ray", "cluster", Status.FAIL,
                           f"the doctor job {job} ended without a report: {tail}")]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- output ------------------------------------------------------------------------------------

def format_checks(checks: list[Check]) -> list[str]:
    """One line per check, then one line of totals."""
    width = max((len(c.where) for c in checks), default=0)
    lines = [f"{c.status.value:<5} {c.name:<8} {c.where:<{width}}  {c.detail}" for c in checks]
    failed = sum(c.status.is_failure for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    lines.append(f"{failed} of {len(checks)} checks failed" + (f", {warned} warning(s)"
                                                               if warned else "")
                 if failed else f"all {len(checks)} checks passed"
                 + (f" ({warned} with a warning)" if warned else ""))
    return lines


def checks_json(checks: list[Check]) -> str:
    return json.dumps({"checks": [{**asdict(c), "status": c.status.value} for c in checks],
                       "failed": sum(c.status.is_failure for c in checks)})


def needs_from_json(text: str) -> list[WeightsNeed]:
    try:
        return [WeightsNeed(**item) for item in json.loads(text)]
    except (ValueError, TypeError) as error:
        raise PrevizError(f"--needs-json: not a list of weights ({error})") from None
