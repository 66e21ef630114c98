"""Open a store by URI: a plain path or `file://` (local), `s3://bucket/prefix` (S3).

New backends register an opener for their scheme; nothing subclasses anything (DESIGN §9).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from previz.store.base import Store
from previz.store.errors import StoreError
from previz.store.redact import CREDENTIALS_HELP, redact

__all__ = ["open_store", "register_scheme", "DEFAULT_STORE", "schemes"]

DEFAULT_STORE = "./renders"

Opener = Callable[[str], Store]
_openers: dict[str, Opener] = {}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# S3 bucket naming rules (lowercase, 3-63, no leading/trailing dot or dash).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def register_scheme(scheme: str, opener: Opener) -> None:
    """Make `open_store` hand URIs of `scheme` to `opener(uri)`."""
    _openers[scheme.lower()] = opener


def schemes() -> list[str]:
    return sorted(_openers)


def open_store(uri: str | None = None) -> Store:
    """The store at `uri`; `./renders` when none is given. Makes no network request."""
    text = (uri or "").strip() or DEFAULT_STORE
    match = _SCHEME.match(text)
    if match is None:
        return _open_local(text)
    scheme = match.group(1).lower()
    opener = _openers.get(scheme)
    if opener is None:
        known = ", ".join(f"{name}://" for name in schemes())
        raise StoreError(
            f"{redact(text)}: unknown store scheme {scheme!r} — use a local path or one of {known}"
        )
    return opener(text)


def _open_local(path: str) -> Store:
    from previz.store.local import LocalStore

    return LocalStore(Path(path))


def _open_file_uri(uri: str) -> Store:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise StoreError(
            f"{redact(uri)}: file URIs name a local folder — use file:///absolute/path "
            "(no host part)"
        )
    if parts.query or parts.fragment:
        raise StoreError(f"{redact(uri)}: a file store URI takes no '?' or '#' part — remove it")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise StoreError(f"{uri}: file URIs need an absolute path — use file:///absolute/path")
    return _open_local(path)


def _open_s3(uri: str) -> Store:
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise StoreError(f"{redact(uri)}: the store URI carries credentials — {CREDENTIALS_HELP}")
    if parts.query or parts.fragment:
        raise StoreError(
            f"{redact(uri)}: an S3 store URI takes no '?' or '#' part — settings belong in the "
            "environment or the AWS profile (AWS_ENDPOINT_URL, AWS_REGION)"
        )
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise StoreError(
            f"{uri}: {bucket!r} is not a valid bucket name — use 3-63 lowercase letters, digits, "
            "'.' or '-' (s3://bucket/prefix)"
        )
    prefix = unquote(parts.path).strip("/")
    from previz.store.keys import check_prefix
    from previz.store.s3 import S3Store

    try:
        if prefix:
            check_prefix(prefix + "/")
    except StoreError:
        raise StoreError(
            f"{uri}: the prefix {prefix!r} has unsafe parts — use letters, digits, '.', '_', '-' "
            "and '/'"
        ) from None
    return S3Store(bucket, prefix)


register_scheme("file", _open_file_uri)
register_scheme("s3", _open_s3)
