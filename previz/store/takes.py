"""Takes: immutable, content-addressed renders of one shot.

    <root>/takes/<key[:2]>/<key>/take.mp4 + take.json (+ thumb.jpg)

Media goes first, `take.json` last: a take without its json does not exist. Every write is
create-only, so racing renders of the same key both succeed and leave one intact copy: a loser
adopts the media already published and treats an existing json as success.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from previz.store.base import DEFAULT_LINK_EXPIRY_S, ObjectInfo, Store, sha256_file
from previz.store.errors import AlreadyExists, NotFound, StoreError, naming_store
from previz.store.keys import check_take_key, take_object, take_prefix
from previz.store.redact import redact

__all__ = [
    "TakeInfo",
    "MEDIA_NAME",
    "RECORD_NAME",
    "THUMB_NAME",
    "SOUND_NAME",
    "fetch_take_sound",
    "publish_take",
    "has_take",
    "read_take_record",
    "fetch_take_media",
    "take_link",
    "check_record",
]

log = logging.getLogger("previz.store")

MEDIA_NAME = "take.mp4"
RECORD_NAME = "take.json"
THUMB_NAME = "thumb.jpg"
SOUND_NAME = "take.wav"
# Fields the store writes into take.json; the caller's recipe may not set them.
_STORE_FIELDS = ("key", "media", "thumb", "sound", "published_at")


@dataclass(frozen=True)
class TakeInfo:
    """A published take. `created` is False when it was already in the store."""

    key: str
    prefix: str
    record: dict[str, Any]
    created: bool


@naming_store
def publish_take(
    store: Store,
    key: str,
    media_path: str | os.PathLike[str],
    record: dict[str, Any],
    thumb_path: str | os.PathLike[str] | None = None,
    sound_path: str | os.PathLike[str] | None = None,
) -> TakeInfo:
    """Publish a rendered take: media (and thumbnail) first, then `take.json` with the recipe.

    `record` is the full recipe (prompt, model, revision, seed, steps, size, frames,
    conditioning hashes, generator version, timings, worker); it must be JSON and hold no
    credentials. Returns the take as stored, which may be a racing twin's.
    """
    # 1. check everything before the first byte moves
    check_take_key(key)
    media = _local_file(store, "media", media_path)
    thumb = _local_file(store, "thumbnail", thumb_path) if thumb_path is not None else None
    sound = _local_file(store, "sound", sound_path) if sound_path is not None else None
    check_record(store, record)
    # 2. a take already published is never rendered or uploaded again
    if has_take(store, key):
        return TakeInfo(key, take_prefix(key), read_take_record(store, key), created=False)
    # 3. media, then thumbnail, each create-only (adopting a twin's copy if one won)
    media_info = _put_adopting(store, take_object(key, MEDIA_NAME), media)
    thumb_info = _put_adopting(store, take_object(key, THUMB_NAME), thumb) if thumb else None
    sound_info = _put_adopting(store, take_object(key, SOUND_NAME), sound) if sound else None
    # 4. take.json last: this write is what makes the take exist
    stored = {
        **record,
        "key": key,
        "media": {"name": MEDIA_NAME, "sha256": media_info.sha256, "size": media_info.size},
        "thumb": (
            {"name": THUMB_NAME, "sha256": thumb_info.sha256, "size": thumb_info.size}
            if thumb_info
            else None
        ),
        # 48 kHz WAV as long as the take; a take without one is silent, and says so
        "sound": ({"name": SOUND_NAME, "sha256": sound_info.sha256, "size": sound_info.size}
                  if sound_info else {"silent": True}),
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    data = (json.dumps(stored, indent=2, sort_keys=True) + "\n").encode()
    try:
        store.put_bytes(take_object(key, RECORD_NAME), data, create_only=True)
    except AlreadyExists:
        return TakeInfo(key, take_prefix(key), read_take_record(store, key), created=False)
    return TakeInfo(key, take_prefix(key), stored, created=True)


@naming_store
def has_take(store: Store, key: str) -> bool:
    """Whether the take is published (its `take.json` exists)."""
    return store.exists(take_object(key, RECORD_NAME))


@naming_store
def read_take_record(store: Store, key: str) -> dict[str, Any]:
    try:
        data = store.get_bytes(take_object(key, RECORD_NAME))
    except NotFound:
        raise NotFound(f"{store.uri}: take {key} is not in the store — render it first") from None
    try:
        record = json.loads(data)
    except ValueError as error:
        raise StoreError(
            f"{store.uri}: take {key} has an unreadable take.json ({error}) — delete the take "
            "folder and render it again"
        ) from None
    if not isinstance(record, dict):
        raise StoreError(
            f"{store.uri}: take {key} has a take.json that is not an object — re-render"
        )
    return record


@naming_store
def fetch_take_media(store: Store, key: str, dest: str | os.PathLike[str]) -> Path:
    """Download the take's media to `dest`, checked against the sha256 in its `take.json`."""
    record = read_take_record(store, key)
    expected = (record.get("media") or {}).get("sha256")
    target = store.get_file(take_object(key, MEDIA_NAME), dest)
    if expected and sha256_file(target) != expected:
        target.unlink(missing_ok=True)
        raise StoreError(
            f"{store.uri}: take {key} media does not match its take.json (sha256) — delete the "
            "take folder and render it again"
        )
    return target


@naming_store
def fetch_take_sound(store: Store, key: str, dest: str | os.PathLike[str]) -> Path | None:
    """Download the take's sound to `dest` (checked like its media); None for a silent take."""
    record = read_take_record(store, key)
    expected = (record.get("sound") or {}).get("sha256")
    if not expected:
        return None
    target = store.get_file(take_object(key, SOUND_NAME), dest)
    if sha256_file(target) != expected:
        target.unlink(missing_ok=True)
        raise StoreError(f"{store.uri}: take {key} sound does not match its take.json (sha256) "
                         "— delete the take folder and render it again")
    return target


@naming_store
def take_link(store: Store, key: str, expires_s: int = DEFAULT_LINK_EXPIRY_S) -> str:
    """A review link for the take's media (presigned on S3)."""
    if not has_take(store, key):
        raise NotFound(f"{store.uri}: take {key} is not in the store — render it first")
    return store.link(take_object(key, MEDIA_NAME), expires_s)


def check_record(store: Store, record: Mapping[str, Any], what: str = "take record",
                 owned: tuple[str, ...] = _STORE_FIELDS) -> str:
    """`record` as JSON, for a document everyone who can read the store sees (a take record, a
    cut manifest); refuses non-JSON values, the fields the store writes itself (`owned`) and
    credentials."""
    if not isinstance(record, Mapping):
        raise StoreError(f"{store.uri}: a {what} must be a dict, not {type(record).__name__}")
    clash = sorted(set(record) & set(owned))
    if clash:
        raise StoreError(
            f"{store.uri}: {what} sets {', '.join(clash)} — the store writes these; "
            f"remove them from the {what}"
        )
    try:
        text = json.dumps(record, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StoreError(
            f"{store.uri}: {what} is not plain JSON ({error}) — pass str, int, float, bool, "
            "None, lists and dicts only"
        ) from None
    if redact(text) != text:
        raise StoreError(
            f"{store.uri}: {what} holds what looks like a credential or a presigned URL — "
            f"remove it; {what}s are shared with everyone who can read the store"
        )
    return text


def _local_file(store: Store, what: str, path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if not file.is_file() or file.stat().st_size == 0:
        raise StoreError(
            f"{store.uri}: take {what} {str(file)!r} is missing or empty — render it again"
        )
    return file


def _put_adopting(store: Store, object_key: str, path: Path) -> ObjectInfo:
    try:
        return store.put_file(object_key, path, create_only=True)
    except AlreadyExists:
        pass
    # A twin render published this file first (same key, same recipe); keep its copy so the
    # json we write describes the bytes actually stored.
    info = store.stat(object_key)
    if info is None:
        return store.put_file(object_key, path, create_only=True)
    if info.sha256 is None:
        with tempfile.TemporaryDirectory(prefix="previz-take-") as scratch:
            copy = store.get_file(object_key, Path(scratch, "adopted"))
            info = ObjectInfo(info.key, info.size, info.tag, sha256_file(copy))
    log.info("%s: %s was published by another render; adopting it", store.uri, object_key)
    return info
