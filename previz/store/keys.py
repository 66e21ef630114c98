"""Object keys, built only from validated parts.

Ids (project, sequence, shot, run) match `[A-Za-z0-9_-]{1,64}`; take keys are 64 lowercase hex
digits (sha256, made by the plan). Anything else is refused before it can become a path or an
object key, so a hostile id can never climb out of the store root.
"""

from __future__ import annotations

import re
from datetime import date

from previz.store.errors import StoreError

__all__ = [
    "ID_PATTERN",
    "TAKE_KEY_PATTERN",
    "check_id",
    "check_take_key",
    "check_file_name",
    "check_object_key",
    "check_prefix",
    "take_prefix",
    "take_object",
    "piece_object",
    "sequence_prefix",
    "version_name",
    "parse_version_name",
    "version_prefix",
    "latest_object",
    "ledger_object",
    "LEDGER_PREFIX",
]

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
TAKE_KEY_PATTERN = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# One segment of an object key: file names, hidden claim files, Hive partitions (`date=...`).
_SEGMENT = re.compile(r"[A-Za-z0-9._=-]{1,128}")
_VERSION = re.compile(r"v(\d{3,4})")
LEDGER_PREFIX = "ledger/"
MAX_VERSION = 9999


def check_id(field: str, value: object) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise StoreError(
            f"{field} {value!r} is not a valid id — use 1-64 letters, digits, '_' or '-'"
        )
    return value


def check_take_key(value: object) -> str:
    if not isinstance(value, str) or not TAKE_KEY_PATTERN.fullmatch(value):
        raise StoreError(
            f"take key {value!r} is not a take key — expected 64 lowercase hex digits "
            "(the sha256 the plan computes)"
        )
    return value


def check_file_name(field: str, value: object) -> str:
    if not isinstance(value, str) or not _FILE_NAME.fullmatch(value) or ".." in value:
        raise StoreError(
            f"{field} {value!r} is not a safe file name — use letters, digits, '.', '_' or '-' "
            "(no '/', no '..', not starting with '.')"
        )
    return value


def check_object_key(key: object) -> str:
    """A relative object key: '/'-separated safe segments, no '.' or '..', no empty parts."""
    if not isinstance(key, str) or not key:
        raise StoreError(f"object key {key!r} is empty — pass a relative key like 'takes/ab/…'")
    for segment in key.split("/"):
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
            raise StoreError(
                f"object key {key!r} has an unsafe part {segment!r} — keys are built from "
                "validated ids only"
            )
    return key


def check_prefix(prefix: object) -> str:
    """A listing prefix: '' (everything), a key, or a key ending in '/'."""
    if prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise StoreError(f"prefix {prefix!r} is not a string")
    check_object_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def take_prefix(key: str) -> str:
    check_take_key(key)
    return f"takes/{key[:2]}/{key}/"


def take_object(key: str, name: str) -> str:
    return take_prefix(key) + check_file_name("take file", name)


_PIECE_SUFFIXES = (".mp4", ".png")


def piece_object(key: str, suffix: str) -> str:
    """A cached assembly piece (see `previz.assemble.pieces`): `pieces/ab/<sha256><suffix>`."""
    if not isinstance(key, str) or not TAKE_KEY_PATTERN.fullmatch(key):
        raise StoreError(f"piece key {key!r} is not a piece key — expected 64 lowercase hex "
                         "digits")
    if suffix not in _PIECE_SUFFIXES:
        raise StoreError(f"piece suffix {suffix!r} is not one of {', '.join(_PIECE_SUFFIXES)}")
    return f"pieces/{key[:2]}/{key}{suffix}"


def sequence_prefix(project: str, sequence: str) -> str:
    return f"{check_id('project', project)}/{check_id('sequence', sequence)}/"


def version_name(version: int) -> str:
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise StoreError(
            f"version {version!r} is out of range — versions run v001 to v{MAX_VERSION}"
        )
    return f"v{version:03d}"


def parse_version_name(name: str) -> int | None:
    match = _VERSION.fullmatch(name)
    return int(match.group(1)) if match and int(match.group(1)) >= 1 else None


def version_prefix(project: str, sequence: str, version: int) -> str:
    return f"{sequence_prefix(project, sequence)}{version_name(version)}/"


def latest_object(project: str, sequence: str) -> str:
    return f"{sequence_prefix(project, sequence)}latest.json"


def ledger_object(day: date, run_id: str, unique: str) -> str:
    check_id("run id", run_id)
    check_id("ledger file id", unique)
    return f"{LEDGER_PREFIX}date={day.isoformat()}/{run_id}-{unique}.parquet"
