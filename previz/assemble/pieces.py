"""Pieces of a cut kept between versions, each addressed by what decides its pixels.

An edit changes a few shots; the review copy's per-shot pieces, the cut's re-encoded transition
pieces and the thumbnails of every other shot are the same as in the last version. Each piece is
named by the sha256 of everything that decides its pixels (which frames of which media at which
opacity, the burn-in text, the codec settings, the size and rate), so a piece found under its key
is the piece this cut would encode, and no version or position is part of a key unless it shows
in the pixels.

The store keeps them under `pieces/` (see `previz.store.keys.piece_object`): shared by every
render into the store, create-only like takes. It is a cache — deleting `pieces/` costs only the
time to encode them again — and writing to it never fails a cut.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from previz.media.encode import CodecSettings, encoder_identity

__all__ = ["PieceCache", "StorePieces", "piece_key", "encoding_identity", "PIECE_FORMAT"]

log = logging.getLogger(__name__)

# Part of every key: bump it when the drawing of burn-ins, the composition of transitions or the
# thumbnails change, so no piece made the old way is reused.
PIECE_FORMAT = "previz-piece/1"


def encoding_identity(width: int, height: int, fps: Fraction,
                      **codecs: CodecSettings) -> dict[str, Any]:
    """What every piece's key holds besides what it shows: its size and rate, the codecs that
    made its pixels (by role) and the ffmpeg build that ran them (another build may write other
    stream headers, and its pieces must not be joined with this one's)."""
    return {"size": [width, height], "fps": str(fps), "encoder": encoder_identity(),
            **{role: asdict(codec) for role, codec in codecs.items()}}


def piece_key(kind: str, fields: Mapping[str, Any]) -> str:
    """The piece's address: sha256 of its kind and fields (JSON with sorted keys)."""
    body = json.dumps({"format": PIECE_FORMAT, "kind": kind, **fields}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


@runtime_checkable
class PieceCache(Protocol):
    """Where pieces are kept between versions."""

    def fetch(self, key: str, suffix: str, dest: Path) -> Path | None:
        """The piece copied to `dest`, or None when it is not kept."""
        ...

    def keep(self, key: str, suffix: str, path: Path) -> None:
        """Keep the file as the piece `key` (a piece already kept stays as it is)."""
        ...

    def discard(self, key: str, suffix: str) -> None:
        """Forget a piece found damaged, so that a good one can be kept in its place."""
        ...


class StorePieces:
    """Pieces in a store (local or S3), beside the takes they are made of."""

    def __init__(self, store: Any):
        self.store = store
        self._warned = False

    def fetch(self, key: str, suffix: str, dest: Path) -> Path | None:
        from previz.store import NotFound, StoreError
        from previz.store.keys import piece_object

        try:
            return self.store.get_file(piece_object(key, suffix), dest)
        except NotFound:
            return None
        except StoreError as error:
            self._warn(error)
            return None

    def keep(self, key: str, suffix: str, path: Path) -> None:
        from previz.store import AlreadyExists, StoreError
        from previz.store.keys import piece_object

        try:
            self.store.put_file(piece_object(key, suffix), path, create_only=True)
        except AlreadyExists:
            pass  # a twin assembly kept its own encode of the same piece first
        except StoreError as error:
            self._warn(error)

    def discard(self, key: str, suffix: str) -> None:
        from previz.store import StoreError
        from previz.store.keys import piece_object

        try:
            self.store.delete(piece_object(key, suffix))
        except StoreError as error:
            self._warn(error)

    def _warn(self, error: Exception) -> None:
        if not self._warned:  # once per cut: the cut itself does not depend on the cache
            self._warned = True
            log.warning("assembly pieces are not cached (%s); the cut is made without them",
                        error)
