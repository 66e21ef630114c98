"""Submit renders to a shared cluster as Ray Jobs, and follow them: submit, status, logs, cancel.

A submission id is derived from the storyboard's edit, so submitting the same storyboard twice
finds the first job instead of rendering twice.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from previz.errors import PrevizError

__all__ = ["submit_storyboard", "submission_id", "job_client", "auth_token", "job_status",
           "list_jobs", "print_logs", "cancel_job"]

METADATA_KEY = "previz"


def submission_id(plan) -> str:
    """Stable for one storyboard edit: the same storyboard submitted twice maps to one job."""
    return f"previz-{plan.project}-{plan.sequence}-{plan.edit_key[:16]}".lower()


def auth_token() -> str | None:
    """Ray's authentication token, from where Ray itself looks: RAY_AUTH_TOKEN, then the file
    named by RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    if not token:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
        if path.is_file():
            token = path.read_text().strip()
    return token or None


def _auth_headers() -> dict[str, str]:
    token = auth_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def job_client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=_auth_headers() or None)
    except Exception as error:  # noqa: BLE001 - connection errors come in many types
        raise PrevizError(
            f"cannot reach the Ray cluster at {address} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}) — check the address "
            "(http://HEAD:8265) and, on a cluster with token authentication, set RAY_AUTH_TOKEN"
        ) from None


def submit_storyboard(path: str, address: str, store: str | None) -> dict[str, Any]:
    """Submit (or find) the Ray Job rendering this storyboard. Returns {id, status, existing}."""
    from previz.plan import plan_from_storyboard
    from previz.storyboard import load_storyboard

    plan = plan_from_storyboard(load_storyboard(path))
    client = job_client(address)
    job_id = submission_id(plan)
    try:
        info = client.get_job_info(job_id)
        return {"id": job_id, "status": str(info.status.value), "existing": True}
    except RuntimeError:
        pass  # no such job yet
    storyboard = Path(path).resolve()
    # The job runs in a copy of the storyboard's folder: a relative store path means the
    # submitter's folder, not that throw-away copy.
    from previz.store.registry import DEFAULT_STORE

    store = store or DEFAULT_STORE
    store = store if "://" in store else str(Path(store).resolve())
    command = ["previz", "render", storyboard.name, "--json", "--store", store]
    client.submit_job(
        entrypoint=" ".join(shlex.quote(part) for part in command),
        submission_id=job_id,
        runtime_env={"working_dir": str(storyboard.parent)},
        metadata={METADATA_KEY: "1", "project": plan.project, "sequence": plan.sequence,
                  "storyboard": storyboard.name},
    )
    return {"id": job_id, "status": "PENDING", "existing": False, "store": store}


def job_status(address: str, job_id: str) -> dict[str, Any]:
    info = _info(job_client(address), job_id)
    return {"id": job_id, "status": str(info.status.value), "message": info.message or "",
            "entrypoint": info.entrypoint}


def list_jobs(address: str) -> list[dict[str, Any]]:
    jobs = []
    for info in job_client(address).list_jobs():
        if (info.metadata or {}).get(METADATA_KEY) == "1":
            jobs.append({"id": info.submission_id, "status": str(info.status.value),
                         "project": info.metadata.get("project"),
                         "sequence": info.metadata.get("sequence"),
                         "start_time": info.start_time})
    return jobs


def print_logs(address: str, job_id: str, follow: bool = False, stream=None) -> None:
    stream = stream or sys.stdout
    client = job_client(address)
    _info(client, job_id)
    if not follow:
        stream.write(client.get_job_logs(job_id))
        return

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            stream.write(chunk)
            stream.flush()

    asyncio.run(tail())


def cancel_job(address: str, job_id: str) -> bool:
    client = job_client(address)
    _info(client, job_id)
    return bool(client.stop_job(job_id))


def _info(client, job_id: str):
    try:
        return client.get_job_info(job_id)
    except RuntimeError:
        raise PrevizError(f"no job {job_id!r} on this cluster — `previz list --address ...` "
                          "shows previz jobs") from None
