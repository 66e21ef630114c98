"""The store interface: a small protocol every backend implements (DESIGN §9).

Keys are relative, '/'-separated and validated (`keys.check_object_key`). Writes are whole-object
and atomic: a reader sees the old object, the new one, or nothing — never a torn file.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from previz.store.errors import StoreError

__all__ = [
    "Store",
    "ObjectInfo",
    "DEFAULT_LINK_EXPIRY_S",
    "MAX_LINK_EXPIRY_S",
    "check_expiry",
    "content_type",
    "sha256_bytes",
    "sha256_file",
]

DEFAULT_LINK_EXPIRY_S = 24 * 3600
# SigV4 presigned URLs cannot live longer than seven days.
MAX_LINK_EXPIRY_S = 7 * 24 * 3600

_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".json": "application/json",
    ".otio": "application/json",
    ".edl": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".html": "text/html; charset=utf-8",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".parquet": "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object.

    `tag` is an opaque version token for compare-and-swap (`put_bytes(if_match=tag)`): the ETag
    on S3, the content hash locally. `sha256` is the content hash when the store knows it.
    """

    key: str
    size: int
    tag: str
    sha256: str | None = None


@runtime_checkable
class Store(Protocol):
    """Where takes, cuts and the ledger live. Open one with `open_store(uri)`."""

    @property
    def uri(self) -> str:
        """The store's address, safe to print (never carries credentials)."""
        ...

    def put_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> ObjectInfo:
        """Write `data` at `key`.

        `create_only`: fail with `AlreadyExists` if `key` holds different content (writing the
        identical bytes again succeeds, so a retried request is harmless). `if_match`: replace
        only while the object's tag still equals this one, else `WriteConflict`.
        """
        ...

    def put_file(
        self, key: str, path: str | os.PathLike[str], *, create_only: bool = False
    ) -> ObjectInfo:
        """Write a local file at `key` (streamed; large files in bounded-memory parts)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's content; `NotFound` if absent."""
        ...

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's content and tag for a later `put_bytes(if_match=tag)`; None if absent."""
        ...

    def get_file(self, key: str, dest: str | os.PathLike[str]) -> Path:
        """Download to `dest` atomically (temp file + rename), verifying the sha256 if known."""
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, tag and (if known) sha256; None if absent."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key starting with `prefix`, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key` if present. Only for cleaning up what was never published."""
        ...

    def copy(self, source: str, key: str) -> ObjectInfo:
        """Put at `key` the bytes of the object `source` without moving them through this
        process: a hard link on a local store (a copy where the file system has none), a
        server-side copy on S3. `NotFound` if `source` is absent; `AlreadyExists` if `key`
        holds other bytes."""
        ...

    def link(self, key: str, expires_s: int = DEFAULT_LINK_EXPIRY_S) -> str:
        """A URL a reviewer can open: presigned HTTPS on S3, a file:// URI locally."""
        ...

    def sweep_staging(self) -> int:
        """Remove what writers that died left half-written; returns how many. (A render calls
        it as it starts; writes in progress elsewhere are never touched.)"""
        ...


def check_expiry(store_uri: str, expires_s: int) -> int:
    if (
        isinstance(expires_s, bool)
        or not isinstance(expires_s, int)
        or not 1 <= expires_s <= MAX_LINK_EXPIRY_S
    ):
        raise StoreError(
            f"{store_uri}: link expiry {expires_s!r}s is out of range — use 1 to "
            f"{MAX_LINK_EXPIRY_S} seconds (7 days, the longest a SigV4 link may live)"
        )
    return expires_s


def content_type(key: str) -> str:
    suffix = os.path.splitext(key)[1].lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
