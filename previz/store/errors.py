"""Errors the store raises. Each is one line that names the store, shows the value and says the fix.

Messages never carry credentials or presigned query strings: everything that quotes a URL or a
service message passes through `redact` first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from previz.errors import PrevizError

__all__ = ["StoreError", "NoCredentials", "NotFound", "WriteConflict", "AlreadyExists",
           "naming_store", "in_store"]

F = TypeVar("F", bound=Callable[..., Any])


class StoreError(PrevizError):
    """A store operation failed in a way the user can act on (exit code 1)."""


class NoCredentials(StoreError):
    """No usable credentials for the store's service where this process runs."""


class NotFound(StoreError):
    """The object asked for is not in the store."""


class WriteConflict(StoreError):
    """A conditional write lost: the object changed since it was read (compare-and-swap)."""


class AlreadyExists(WriteConflict):
    """A create-only write found the object already there with different content."""


def in_store(uri: str, error: StoreError) -> StoreError:
    """`error` with the store's URI in front, unless it already names it."""
    text = str(error)
    if text.startswith(uri):
        return error
    return type(error)(f"{uri}: {text}")


def naming_store(function: F) -> F:
    """Make every StoreError from `function(store, ...)` name the store."""

    @functools.wraps(function)
    def wrapper(store: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(store, *args, **kwargs)
        except StoreError as error:
            named = in_store(store.uri, error)
            if named is error:
                raise
            raise named from None

    return wrapper  # type: ignore[return-value]
