"""The take store: content-addressed takes, versioned cuts and the run ledger (DESIGN §5).

    store = open_store("s3://studio-previz/lighthouse")   # or a path; ./renders by default
    publish_take(store, key, "take.mp4", recipe)
    publish_cut(store, "LIGHTHOUSE", "SQ010", files, manifest, edit_key)

A store is anything that satisfies the `Store` protocol; `open_store` picks one by URI scheme
(`register_scheme` adds more). Errors are `StoreError`: one line naming the store and the fix.
"""

from previz.store.base import (
    DEFAULT_LINK_EXPIRY_S,
    MAX_LINK_EXPIRY_S,
    ObjectInfo,
    Store,
)
from previz.store.cuts import (
    CutDraft,
    CutVersion,
    cut_links,
    latest_version,
    publish_cut,
    published_versions,
    read_manifest,
    reserve_version,
    unchanged_version,
)
from previz.store.errors import AlreadyExists, NoCredentials, NotFound, StoreError, WriteConflict
from previz.store.ledger import (
    Attempt,
    LedgerWriter,
    append_attempts,
    format_ledger_summary,
    ledger_summary,
    read_ledger,
)
from previz.store.redact import redact
from previz.store.registry import DEFAULT_STORE, open_store, register_scheme
from previz.store.takes import (
    TakeInfo,
    fetch_take_media,
    has_take,
    publish_take,
    read_take_record,
    take_link,
)

__all__ = [
    "NoCredentials",
    "Store",
    "ObjectInfo",
    "open_store",
    "register_scheme",
    "DEFAULT_STORE",
    "DEFAULT_LINK_EXPIRY_S",
    "MAX_LINK_EXPIRY_S",
    "StoreError",
    "NotFound",
    "WriteConflict",
    "AlreadyExists",
    "redact",
    "TakeInfo",
    "publish_take",
    "has_take",
    "read_take_record",
    "fetch_take_media",
    "take_link",
    "CutVersion",
    "CutDraft",
    "reserve_version",
    "publish_cut",
    "latest_version",
    "published_versions",
    "unchanged_version",
    "read_manifest",
    "cut_links",
    "Attempt",
    "LedgerWriter",
    "append_attempts",
    "read_ledger",
    "ledger_summary",
    "format_ledger_summary",
]
