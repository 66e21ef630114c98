"""Encode and publish beside the GPU: the CPU side of a worker's output.

A single-segment take is retimed to the cut's exact frames, encoded and published. A segment of
a longer take is published under its task key (so a rerun resumes mid-shot); the last segment
joins all segments (each later one repeats the previous one's last frame), retimes and publishes
the take.

Whatever publishes a take also writes its ledger row, at once: a row kept for the driver to
write would be lost with it (a killed driver, a Ctrl-C while encodes finish).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import ray

from previz.plan.types import ShotTask, TakePlan

__all__ = ["publish_output", "publish_frames", "publish_encoded", "publishes_as_encoded",
           "last_frame_of", "MEDIA_NAME"]

MEDIA_NAME = "take.mp4"

log = logging.getLogger(__name__)


# No CPU reservation: encodes are already bounded (one per finished task), and reserving one
# could starve them for good on a node whose CPUs all belong to CPU-only (draft) workers.
@ray.remote(num_cpus=0, max_retries=2)
def publish_output(store_uri: str, task_json: str, take_json: str, frames: np.ndarray,
                   fps: float, record: dict[str, Any],
                   sound: np.ndarray | None = None) -> dict[str, Any]:
    from previz.store import open_store

    task = ShotTask.model_validate_json(task_json)
    take = TakePlan.model_validate_json(take_json)
    return publish_frames(open_store(store_uri), task, take, frames, record, sound)


def publishes_as_encoded(task: ShotTask, take: TakePlan) -> bool:
    """Whether the task's own frames are the take exactly (one segment, the cut's rate and
    size, no retiming): then a generator that encodes as it draws (the draft) may publish its
    file as it is."""
    retime = take.retime
    return (task.segments == 1 and Fraction(retime.source_fps) == Fraction(retime.cut_fps)
            and retime.source_frames == retime.cut_frames == task.num_frames
            and (task.width, task.height) == (take.width, take.height))


def publish_encoded(store, task: ShotTask, take: TakePlan, media: Path,
                    record: dict[str, Any], sound: np.ndarray | None = None) -> dict[str, Any]:
    """Publish a take the generator encoded itself (see `publishes_as_encoded`)."""
    from previz.media.encode import last_frame, thumbnail
    from previz.store.takes import publish_take

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="previz-publish-") as folder:
        thumb = Path(folder) / "thumb.jpg"
        thumb.write_bytes(thumbnail(np.asarray(last_frame(media))))
        media, credentials = _signed(media, Path(folder), task, take)
        full_record = _take_record(task, take, record, "take", started, credentials)
        publish_take(store, take.key, media, full_record, thumb,
                     _take_sound(sound, take, Path(folder)))
    return {"key": take.key, "kind": "take", "encode_seconds": time.time() - started,
            "ledger_error": _record_in_ledger(store, task, take, full_record)}


def publish_frames(store, task: ShotTask, take: TakePlan, frames: np.ndarray,
                   record: dict[str, Any], sound: np.ndarray | None = None) -> dict[str, Any]:
    from previz.media.encode import CODECS, DEFAULT, encode_take, thumbnail
    from previz.store.takes import publish_take

    # Settings the generator asks for (the draft's fast preset) share the cut's stream headers.
    codec = CODECS.get(record.get("codec", ""), DEFAULT)
    started = time.time()
    if len(frames) != task.num_frames:
        raise RuntimeError(f"{task.shot_id} take {task.take} segment {task.segment}: generator "
                           f"returned {len(frames)} frames, the plan asked for {task.num_frames}")
    with tempfile.TemporaryDirectory(prefix="previz-publish-") as folder:
        media = Path(folder) / MEDIA_NAME
        sound_path = None
        if task.segment < task.segments - 1:
            # An intermediate segment: kept at the model's rate, keyed by its task.
            encode_take(frames, Fraction(task.fps).limit_denominator(1001), media,
                        width=task.width, height=task.height, codec_settings=codec)
            key, kind = task.key, "segment"
        else:
            joined = _join_segments(store, take, frames, folder)
            picked = joined[take.retime.source_indices()]
            encode_take(picked, Fraction(take.retime.cut_fps), media, width=take.width,
                        height=take.height, codec_settings=codec)
            key, kind = take.key, "take"
            media, credentials = _signed(media, Path(folder), task, take)
            # (the sound of a take in segments is its last call's: no model in the catalog
            # makes sound over several windows yet)
            sound_path = _take_sound(sound if task.segments == 1 else None, take, Path(folder))
        thumb = Path(folder) / "thumb.jpg"
        thumb.write_bytes(thumbnail(frames))
        full_record = _take_record(task, take, record, kind, started,
                                   credentials if kind == "take" else None)
        publish_take(store, key, media, full_record, thumb, sound_path)
    return {"key": key, "kind": kind, "encode_seconds": time.time() - started,
            "ledger_error": _record_in_ledger(store, task, take, full_record)}


def _record_in_ledger(store, task: ShotTask, take: TakePlan, record: dict[str, Any]) -> str | None:
    """Write the published attempt's ledger row (from the take record: run, attempt, worker,
    times). Returns why it could not be written, if so: the take stands either way, and the
    driver says what is missing from the ledger."""
    from previz.store.ledger import Attempt, Outcome, append_attempts

    if not record.get("run_id"):
        return None  # published outside a render (tests, tools): no run to account it to
    finished = float(record["finished"])
    started = finished - float(record.get("generate_seconds", 0.0))
    load_seconds = float(record.get("load_seconds", 0.0))
    try:
        append_attempts(store, [Attempt(
            run_id=record["run_id"], shot=task.shot_id, take_key=take.key, model=task.model,
            attempt=int(record["attempt"]), outcome=Outcome.OK, frames=task.num_frames,
            started_at=datetime.fromtimestamp(started, timezone.utc),
            finished_at=datetime.fromtimestamp(finished, timezone.utc),
            gpu_seconds=(finished - started + load_seconds) * int(record.get("gpus",
                                                                           task.gpus)),
            node=str(record.get("node", "")), worker=str(record.get("worker", "")))])
    except Exception as error:  # noqa: BLE001 - the take is published; the row is bookkeeping
        log.warning("run %s: %s take %s is published but its ledger row could not be written "
                    "(%s)", record["run_id"], task.shot_id, take.key[:12], error)
        return f"{type(error).__name__}: {error}"
    return None


def _take_sound(sound: np.ndarray | None, take: TakePlan, folder: Path) -> Path | None:
    """The take's sound as a WAV as long as the take is in the cut (what the generator made
    for its frames, cut or padded with silence to the retimed length), or None: silent."""
    if sound is None:
        return None
    from previz.media.audio import RATE, silence, write_wav

    samples = round(Fraction(take.retime.cut_frames) * RATE / Fraction(take.retime.cut_fps))
    fitted = silence(samples)
    fitted[:min(samples, len(sound))] = sound[:samples]
    return write_wav(fitted, folder / "take.wav")


def _signed(media: Path, folder: Path, task: ShotTask,
            take: TakePlan) -> tuple[Path, dict[str, Any]]:
    """The take's media with content credentials, when this process has a signing certificate
    (the node's PREVIZ_C2PA_CERT and PREVIZ_C2PA_KEY), and what the take record says of them."""
    from previz.generate.registry import generator_declaration
    from previz.media.credentials import sign_take, signing_from_env

    signing = signing_from_env()
    if signing is None:
        return media, {"signed_by": None}
    if media.parent != folder:  # the generator's own file: sign a copy
        media = Path(shutil.copy(media, folder / MEDIA_NAME))
    declaration = generator_declaration(task.generator)
    sign_take(media, signing, task=task, take_key=take.key,
              source_type=declaration.digital_source_type,
              generator_version=declaration.version)
    return media, {"signed_by": signing.subject}


def _take_record(task: ShotTask, take: TakePlan, record: dict[str, Any], kind: str,
                 started: float, credentials: dict[str, Any] | None) -> dict[str, Any]:
    return {
        **record, "kind": kind, "shot": task.shot_id, "take": task.take,
        "credentials": credentials,
        "segment": task.segment, "segments": task.segments,
        "recipe": task.model_dump(mode="json"),
        "retime": take.retime.model_dump() if kind == "take" else None,
        "encode_seconds": time.time() - started,
    }


def _join_segments(store, take: TakePlan, last_frames: np.ndarray, folder: str) -> np.ndarray:
    if len(take.tasks) == 1:
        return last_frames
    from previz.media.encode import decode_frames
    from previz.store.takes import fetch_take_media

    parts = []
    for index, segment in enumerate(take.tasks[:-1]):
        path = Path(folder) / f"segment{index}.mp4"
        fetch_take_media(store, segment.key, path)
        frames = decode_frames(path)
        parts.append(frames if index == 0 else frames[1:])
    parts.append(last_frames[1:])
    return np.concatenate(parts)


def last_frame_of(store, key: str):
    """The last frame (as seen in the cut) of a published take or segment, as a PIL image."""
    from previz.media.encode import last_frame
    from previz.store.takes import fetch_take_media

    with tempfile.TemporaryDirectory(prefix="previz-last-") as folder:
        path = Path(folder) / MEDIA_NAME
        fetch_take_media(store, key, path)
        return last_frame(path)
