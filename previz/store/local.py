"""The embedded store: a directory on a local or shared file system.

Every write goes to a temp file in the target's own directory and is then published in one atomic
step: `os.replace` for plain writes, `os.link` for create-only writes (fails if the name exists,
so it doubles as `O_CREAT|O_EXCL` with the whole content). Compare-and-swap runs under an `flock`
on a sibling lock file. Readers therefore never see a partial object.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from previz.store.base import (
    DEFAULT_LINK_EXPIRY_S,
    ObjectInfo,
    check_expiry,
    sha256_bytes,
    sha256_file,
)
from previz.store.errors import AlreadyExists, NotFound, StoreError, WriteConflict, in_store
from previz.store.keys import check_object_key, check_prefix

__all__ = ["LocalStore", "is_internal_name"]

_TEMP_MARK = ".tmp-"
_LOCK_SUFFIX = ".lock"
# Writes are staged here, never beside the objects: a writer killed mid-write leaves nothing in
# a published take's or version's folder, and the next render sweeps what it left.
_STAGING = ".staging"
# A staged file of a writer on another host is swept once this old (its liveness is unknown).
_STALE_SECONDS = 24 * 3600
# Hard links are how create-only works; these errors mean the file system has none.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def is_internal_name(name: str) -> bool:
    """Temp and lock files the local store keeps beside objects; never listed as objects."""
    return name.startswith(".") and (_TEMP_MARK in name or name.endswith(_LOCK_SUFFIX))


class LocalStore:
    """A store rooted at a directory (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    # -- writes -----------------------------------------------------------------------------

    def put_bytes(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> ObjectInfo:
        if create_only and if_match is not None:
            raise ValueError("create_only and if_match are exclusive")
        path = self._path(key)
        digest = sha256_bytes(data)
        with self._errors("write", key):
            temp = self._temp_for(path)
            try:
                _write_durably(temp, lambda handle: handle.write(data))
                if create_only:
                    self._link_exclusive(key, temp, path, digest)
                elif if_match is not None:
                    with self._locked(path):
                        current = _read_or_none(path)
                        if current is None or sha256_bytes(current) != if_match:
                            raise WriteConflict(
                                f"{self.uri}: {key} changed since it was read — read it again "
                                "and retry"
                            )
                        os.replace(temp, path)
                else:
                    os.replace(temp, path)
                _fsync_dir(path.parent)
            finally:
                temp.unlink(missing_ok=True)
        return ObjectInfo(key=key, size=len(data), tag=digest, sha256=digest)

    def put_file(
        self, key: str, path: str | os.PathLike[str], *, create_only: bool = False
    ) -> ObjectInfo:
        source = Path(path)
        target = self._path(key)
        if not source.is_file():
            raise StoreError(
                f"{self.uri}: cannot store {key}: {source} is not a file — check the path"
            )
        with self._errors("write", key):
            temp = self._temp_for(target)
            try:
                with open(source, "rb") as reader:
                    _write_durably(temp, lambda handle: shutil.copyfileobj(reader, handle, 1 << 20))
                digest = sha256_file(temp)
                if create_only:
                    self._link_exclusive(key, temp, target, digest)
                else:
                    os.replace(temp, target)
                _fsync_dir(target.parent)
                size = target.stat().st_size
            finally:
                temp.unlink(missing_ok=True)
        return ObjectInfo(key=key, size=size, tag=digest, sha256=digest)

    def copy(self, source: str, key: str) -> ObjectInfo:
        origin, target = self._path(source), self._path(key)
        with self._errors("copy", key):
            if not origin.is_file():
                raise NotFound(f"{self.uri}: no object {source} to copy — publish it first")
            self._prepare(target)
            digest = sha256_file(origin)
            try:
                os.link(origin, target)  # the same bytes on disk: a version adds none
            except FileExistsError:
                if sha256_file(target) != digest:
                    raise AlreadyExists(
                        f"{self.uri}: {key} already exists — it is never overwritten") from None
            except OSError as error:
                if error.errno not in _NO_LINKS:
                    raise
                temp = self._temp_for(target)
                try:
                    shutil.copyfile(origin, temp)
                    self._link_exclusive(key, temp, target, digest)
                finally:
                    temp.unlink(missing_ok=True)
            _fsync_dir(target.parent)
            return ObjectInfo(key=key, size=target.stat().st_size, tag=digest, sha256=digest)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._errors("delete", key):
            path.unlink(missing_ok=True)
            # Prune directories this left empty, so an abandoned version leaves no trace.
            parent = path.parent
            while parent != self.root and self.root in parent.parents:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    # -- reads ------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with self._errors("read", key):
            data = _read_or_none(path)
        if data is None:
            raise NotFound(f"{self.uri}: no object {key} — check the key or publish it first")
        return data

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        path = self._path(key)
        with self._errors("read", key):
            data = _read_or_none(path)
        return None if data is None else (data, sha256_bytes(data))

    def get_file(self, key: str, dest: str | os.PathLike[str]) -> Path:
        source = self._path(key)
        target = Path(dest)
        if not source.is_file():
            raise NotFound(f"{self.uri}: no object {key} — check the key or publish it first")
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}{_TEMP_MARK}{uuid.uuid4().hex}")
        try:
            with self._errors("read", key):
                shutil.copyfile(source, temp)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return target

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        with self._errors("read", key):
            if not path.is_file():
                return None
            digest = sha256_file(path)
            return ObjectInfo(key=key, size=path.stat().st_size, tag=digest, sha256=digest)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        try:
            check_prefix(prefix)
        except StoreError as error:
            raise in_store(self.uri, error) from None
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        found = []
        with self._errors("list", prefix or "/"):
            for folder, _dirs, files in os.walk(base):
                for name in files:
                    if is_internal_name(name):
                        continue
                    key = Path(folder, name).relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        found.append(key)
        return sorted(found)

    def link(self, key: str, expires_s: int = DEFAULT_LINK_EXPIRY_S) -> str:
        check_expiry(self.uri, expires_s)
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"{self.uri}: no object {key} to link — publish it first")
        return path.as_uri()

    # -- helpers ----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        try:
            return self.root / check_object_key(key)
        except StoreError as error:
            raise in_store(self.uri, error) from None

    def _prepare(self, path: Path) -> None:
        """Check the root is a folder and make the object's folder."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(
                f"{self.uri}: the store root is a file, not a folder — choose another path"
            )
        path.parent.mkdir(parents=True, exist_ok=True)

    def _temp_for(self, path: Path) -> Path:
        self._prepare(path)
        staging = self.root / _STAGING
        staging.mkdir(exist_ok=True)
        # Named by its writer, so a sweep can tell a dead writer's file from a live one's.
        return staging / f".{socket.gethostname()}-{os.getpid()}{_TEMP_MARK}{uuid.uuid4().hex}"

    def sweep_staging(self) -> int:
        swept = 0
        staging = self.root / _STAGING
        if not staging.is_dir():
            return 0
        host = socket.gethostname()
        for temp in staging.iterdir():
            writer, _, _ = temp.name[1:].partition(_TEMP_MARK)
            writer_host, _, pid = writer.rpartition("-")
            try:
                if writer_host == host and pid.isdigit():
                    if _alive(int(pid)):
                        continue
                elif time.time() - temp.stat().st_mtime < _STALE_SECONDS:
                    continue
                temp.unlink()
                swept += 1
            except OSError:
                continue  # gone already, or not ours to remove
        return swept

    def _link_exclusive(self, key: str, temp: Path, path: Path, digest: str) -> None:
        try:
            os.link(temp, path)
            return
        except FileExistsError:
            pass
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            with self._locked(path):
                if not path.exists():
                    os.replace(temp, path)
                    return
        if sha256_file(path) != digest:
            raise AlreadyExists(f"{self.uri}: {key} already exists — it is never overwritten")

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        lock_path = path.with_name(f".{path.name}{_LOCK_SUFFIX}")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except OSError as error:
            raise StoreError(f"{self.uri}: cannot {action} {key}: {_explain(error)}") from error


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _explain(error: OSError) -> str:
    code = error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device — free space or choose another store"
    if code == errno.EFBIG:
        return (
            "file too large for this file system or process limit — raise the limit or "
            "choose another store"
        )
    if code == errno.EROFS:
        return "the file system is read-only — remount it read-write or choose another store"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied — give this user write access or choose another store"
    if code == errno.ENOTDIR:
        return "a path component is a file, not a folder — choose another store path"
    return f"{error.strerror or error} — check the store path"


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_durably(path: Path, write) -> None:
    with open(path, "xb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry is; best effort where unsupported.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
