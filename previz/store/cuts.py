"""Cut versions: `<root>/<PROJECT>/<SEQ>/v001/ …` plus `<root>/<PROJECT>/<SEQ>/latest.json`.

A version is allocated by a create-only claim (`<SEQ>/.claims/vNNN`, beside the version folders
so a published folder holds the cut alone), so two publishers never share or overwrite one.
Media goes first, `manifest.json` last: the manifest is what publishes the version.
`latest.json` then moves forward by compare-and-swap, never backward. A manifest records the
edit's fingerprint (`edit_key`), so publishing an unchanged edit returns the existing version.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from previz.store.base import DEFAULT_LINK_EXPIRY_S, ObjectInfo, Store
from previz.store.errors import AlreadyExists, NotFound, StoreError, WriteConflict, naming_store
from previz.store.keys import (
    MAX_VERSION,
    check_file_name,
    latest_object,
    parse_version_name,
    sequence_prefix,
    version_name,
    version_prefix,
)
from previz.store.takes import check_record

__all__ = [
    "CutVersion",
    "CutDraft",
    "MANIFEST_NAME",
    "CLAIM_NAME",
    "VERSION_PLACEHOLDER",
    "reserve_version",
    "publish_cut",
    "latest_version",
    "published_versions",
    "unchanged_version",
    "read_manifest",
    "cut_links",
]

log = logging.getLogger("previz.store")

MANIFEST_NAME = "manifest.json"
CLAIM_NAME = ".claim"  # where an older store claimed a version: inside its folder
CLAIMS_FOLDER = ".claims"
VERSION_PLACEHOLDER = "{version}"
_EDIT_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STORE_FIELDS = ("project", "sequence", "version", "name", "edit_key", "files", "published_at")
_CAS_ATTEMPTS = 64


@dataclass(frozen=True)
class CutVersion:
    """One version of a sequence's cut. `reused`: the edit was already published as this one."""

    project: str
    sequence: str
    version: int
    name: str
    prefix: str
    edit_key: str | None = None
    reused: bool = False
    files: tuple[str, ...] = field(default=())

    def key(self, file_name: str) -> str:
        return self.prefix + check_file_name("cut file", file_name)


class CutDraft:
    """A claimed, unpublished version. Use as a context manager: leaving it unpublished (or by an
    exception) removes what was uploaded and the claim, so nothing partial stays behind."""

    def __init__(self, store: Store, version: CutVersion, claim: bytes):
        self.store = store
        self.version = version
        self._claim = claim
        self._uploaded: dict[str, ObjectInfo] = {}
        self._published: CutVersion | None = None

    @property
    def name(self) -> str:
        return self.version.name

    def put(self, file_name: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Upload one file of the cut (media, OTIO, EDL, XML, review page …)."""
        self._check_open()
        name = _check_cut_file_name(self.store, file_name)
        info = self.store.put_file(self.version.key(name), path)
        self._uploaded[name] = info
        return info

    def copy(self, file_name: str, source: str) -> ObjectInfo:
        """Put one file of the cut that is already in the store as `source` (a take's media):
        its bytes are not uploaded again, and on a local store not stored again either."""
        self._check_open()
        name = _check_cut_file_name(self.store, file_name)
        info = self.store.copy(source, self.version.key(name))
        self._uploaded[name] = info
        return info

    def publish(self, manifest: Mapping[str, Any], edit_key: str) -> CutVersion:
        """Write `manifest.json` (publishing the version), then move `latest.json` forward."""
        self._check_open()
        _check_edit_key(self.store, edit_key)
        if not self._uploaded:
            raise StoreError(
                f"{self.store.uri}: {self.version.prefix} has no files — put the cut's media "
                "before publishing"
            )
        check_record(self.store, manifest, "manifest", _STORE_FIELDS)
        body = dict(manifest)
        body.update(
            project=self.version.project,
            sequence=self.version.sequence,
            version=self.version.version,
            name=self.version.name,
            edit_key=edit_key,
            files={
                name: {"sha256": info.sha256, "size": info.size}
                for name, info in sorted(self._uploaded.items())
            },
            published_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        data = (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()
        try:
            self.store.put_bytes(self.version.key(MANIFEST_NAME), data, create_only=True)
        except StoreError as error:
            # A write whose reply was lost may still have landed: if our manifest is there, the
            # version is published and must not be cleaned up as if it never was.
            try:
                landed = self._stored_manifest() == data
            except StoreError:
                raise error from None
            if not landed:
                raise
        self._published = replace(
            self.version, edit_key=edit_key, files=tuple(sorted(self._uploaded))
        )
        _advance_latest(self.store, self._published)
        return self._published

    def abandon(self) -> None:
        """Remove the uploaded files and the claim (only ever for an unpublished version)."""
        if self._published is not None:
            raise StoreError(f"{self.store.uri}: {self.version.prefix} is published; it stays")
        try:
            # A manifest that landed although its write failed publishes the version: readers
            # see it, so its media stays (as everything does when the check itself fails).
            if self._stored_manifest() is not None:
                raise StoreError(
                    f"{self.store.uri}: {self.version.prefix}{MANIFEST_NAME} is in the store "
                    "although its write failed, so the version stays — check it and remove the "
                    "version by hand if it is not wanted"
                )
            for name in list(self._uploaded):
                self.store.delete(self.version.key(name))
                del self._uploaded[name]
            self.store.delete(_claim_key(self.version.project, self.version.sequence,
                                         self.version.version))
        except StoreError as error:
            # The claim stays, so the number is never handed out over leftovers.
            log.warning(
                "%s: could not clean up unpublished %s: %s",
                self.store.uri,
                self.version.prefix,
                error,
            )
        self._published = None
        self._uploaded.clear()

    def __enter__(self) -> CutDraft:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._published is None:
            self.abandon()

    def _stored_manifest(self) -> bytes | None:
        found = self.store.get_tagged(self.version.key(MANIFEST_NAME))
        return found[0] if found else None

    def _check_open(self) -> None:
        if self._published is not None:
            raise StoreError(f"{self.store.uri}: {self.version.prefix} is already published")


@naming_store
def reserve_version(store: Store, project: str, sequence: str) -> CutDraft:
    """Claim the next free version of the sequence with a create-only write."""
    base = sequence_prefix(project, sequence)
    token = uuid.uuid4().hex
    candidate = _highest_version(store, base) + 1
    while candidate <= MAX_VERSION:
        claim = json.dumps(
            {
                "token": token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "claimed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        ).encode()
        prefix = version_prefix(project, sequence, candidate)
        try:
            store.put_bytes(_claim_key(project, sequence, candidate), claim, create_only=True)
        except AlreadyExists:
            candidate += 1
            continue
        version = CutVersion(project, sequence, candidate, version_name(candidate), prefix)
        return CutDraft(store, version, claim)
    raise StoreError(
        f"{store.uri}: {base} has used every version up to v{MAX_VERSION} — start a new sequence"
    )


@naming_store
def publish_cut(
    store: Store,
    project: str,
    sequence: str,
    files: Mapping[str, str | os.PathLike[str]],
    manifest: Mapping[str, Any],
    edit_key: str,
) -> CutVersion:
    """Publish a cut as the sequence's next version, or return the latest if it is this edit.

    `files` maps file names to local paths; a name may hold `{version}`
    (`SQ010_previz_{version}.mp4` becomes `SQ010_previz_v003.mp4`). Files are uploaded in the
    order given, the manifest last.
    """
    # 1. check everything before claiming anything
    sequence_prefix(project, sequence)
    _check_edit_key(store, edit_key)
    check_record(store, manifest, "manifest", _STORE_FIELDS)
    if not files:
        raise StoreError(f"{store.uri}: a cut needs at least one file — pass its media")
    for name, path in files.items():
        _check_cut_file_name(store, name.replace(VERSION_PLACEHOLDER, "v001"))
        if not Path(path).is_file():
            raise StoreError(
                f"{store.uri}: cut file {name!r} at {str(path)!r} is missing — "
                "render or assemble it first"
            )
    # 2. an unchanged edit keeps its version
    unchanged = unchanged_version(store, project, sequence, edit_key)
    if unchanged is not None:
        return unchanged
    # 3. claim a version, upload media, publish the manifest (cleans up on any failure)
    with reserve_version(store, project, sequence) as draft:
        for name, path in files.items():
            draft.put(name.replace(VERSION_PLACEHOLDER, draft.name), path)
        return draft.publish(manifest, edit_key)


@naming_store
def latest_version(store: Store, project: str, sequence: str) -> CutVersion | None:
    """The newest published version (from `latest.json`, or by listing if it is missing)."""
    found = store.get_tagged(latest_object(project, sequence))
    pointer = _parse_pointer(found[0]) if found else None
    if pointer is not None:
        return _version_from(project, sequence, pointer["version"], pointer.get("edit_key"))
    versions = published_versions(store, project, sequence)
    if not versions:
        return None
    manifest = read_manifest(store, project, sequence, versions[-1])
    return _version_from(project, sequence, versions[-1], manifest.get("edit_key"))


@naming_store
def published_versions(store: Store, project: str, sequence: str) -> list[int]:
    """Every version number with a manifest, ascending."""
    base = sequence_prefix(project, sequence)
    numbers = set()
    for key in store.list(base):
        folder, _, name = key[len(base) :].partition("/")
        number = parse_version_name(folder)
        if number is not None and name == MANIFEST_NAME:
            numbers.add(number)
    return sorted(numbers)


@naming_store
def unchanged_version(store: Store, project: str, sequence: str,
                      edit_key: str) -> CutVersion | None:
    """The latest version, if it is this edit: publishing the same edit again reuses it. An
    older version of the same edit is not: going back to an earlier edit makes a new latest
    version, so `latest` never points back and version numbers only grow."""
    _check_edit_key(store, edit_key)
    latest = latest_version(store, project, sequence)
    if latest is not None and latest.edit_key == edit_key:
        return replace(latest, reused=True)
    return None


@naming_store
def read_manifest(store: Store, project: str, sequence: str, version: int | str) -> dict[str, Any]:
    """A published version's manifest; `version` is a number, 'v003' or 'latest'."""
    number = _resolve_version(store, project, sequence, version)
    key = version_prefix(project, sequence, number) + MANIFEST_NAME
    try:
        data = store.get_bytes(key)
    except NotFound:
        raise NotFound(
            f"{store.uri}: {project}/{sequence} {version_name(number)} is not published — "
            "list the published versions or publish the cut"
        ) from None
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise StoreError(f"{store.uri}: {key} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{store.uri}: {key} is not a JSON object")
    return manifest


@naming_store
def cut_links(
    store: Store, version: CutVersion, expires_s: int = DEFAULT_LINK_EXPIRY_S
) -> dict[str, str]:
    """Review links for every file of a published version (presigned on S3, file:// locally)."""
    manifest = read_manifest(store, version.project, version.sequence, version.version)
    names = sorted(manifest.get("files", {})) + [MANIFEST_NAME]
    return {name: store.link(version.key(name), expires_s) for name in names}


# -- helpers ------------------------------------------------------------------------------------


def _advance_latest(store: Store, version: CutVersion) -> None:
    key = latest_object(version.project, version.sequence)
    pointer = (
        json.dumps(
            {
                "version": version.version,
                "name": version.name,
                "prefix": version.prefix,
                "edit_key": version.edit_key,
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
            indent=2,
            sort_keys=True,
        ).encode()
        + b"\n"
    )
    try:
        for _attempt in range(_CAS_ATTEMPTS):
            found = store.get_tagged(key)
            try:
                if found is None:
                    store.put_bytes(key, pointer, create_only=True)
                    return
                current = _parse_pointer(found[0])
                if current is not None and current["version"] >= version.version:
                    return  # a newer version got there first; never move backward
                store.put_bytes(key, pointer, if_match=found[1])
                return
            except WriteConflict:
                continue
        raise StoreError(f"{store.uri}: {key} kept changing under us — publish again later")
    except StoreError as error:
        # The manifest already published the version; the pointer catches up on the next publish
        # and readers fall back to listing when it lags.
        log.warning(
            "%s: %s published but latest.json was not moved: %s", store.uri, version.prefix, error
        )


def _parse_pointer(data: bytes) -> dict[str, Any] | None:
    try:
        pointer = json.loads(data)
    except ValueError:
        return None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("version"), int):
        return None
    return pointer


def _version_from(
    project: str, sequence: str, number: int, edit_key: Any, *, reused: bool = False
) -> CutVersion:
    return CutVersion(
        project,
        sequence,
        number,
        version_name(number),
        version_prefix(project, sequence, number),
        edit_key=edit_key if isinstance(edit_key, str) else None,
        reused=reused,
    )


def _resolve_version(store: Store, project: str, sequence: str, version: int | str) -> int:
    if isinstance(version, int) and not isinstance(version, bool):
        version_name(version)
        return version
    if version == "latest":
        latest = latest_version(store, project, sequence)
        if latest is None:
            raise NotFound(f"{store.uri}: {project}/{sequence} has no published cut — publish one")
        return latest.version
    number = parse_version_name(version) if isinstance(version, str) else None
    if number is None:
        raise StoreError(
            f"{store.uri}: version {version!r} is not valid — use 3, 'v003' or 'latest'"
        )
    return number


def _claim_key(project: str, sequence: str, version: int) -> str:
    return f"{sequence_prefix(project, sequence)}{CLAIMS_FOLDER}/{version_name(version)}"


def _highest_version(store: Store, base: str) -> int:
    """The highest version claimed or holding files (an older store claimed inside the folder)."""
    highest = 0
    for key in store.list(base):
        folder, _, rest = key[len(base) :].partition("/")
        number = parse_version_name(rest if folder == CLAIMS_FOLDER else folder)
        if number is not None:
            highest = max(highest, number)
    return highest


def _check_cut_file_name(store: Store, name: str) -> str:
    check_file_name("cut file", name)
    if name in (MANIFEST_NAME, CLAIM_NAME):
        raise StoreError(f"{store.uri}: cut file name {name!r} is reserved — rename the file")
    return name


def _check_edit_key(store: Store, edit_key: object) -> str:
    if not isinstance(edit_key, str) or not _EDIT_KEY.fullmatch(edit_key):
        raise StoreError(
            f"{store.uri}: edit key {edit_key!r} is not valid — use the edit's fingerprint "
            "(1-128 letters, digits, '.', '_', ':' or '-')"
        )
    return edit_key
