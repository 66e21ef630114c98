"""Run in a child process by test_store_local_faults: publish into a local store until the file
system refuses (file-size limit, full tmpfs, read-only remount), then report what is visible.

    python store_local_child.py MODE ROOT SMALL BIG      (MODE: fsize | full | readonly)
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from previz.store import (
    StoreError,
    fetch_take_media,
    has_take,
    latest_version,
    open_store,
    publish_cut,
    publish_take,
    published_versions,
)

GOOD, BAD = (hashlib.sha256(name.encode()).hexdigest() for name in ("good", "bad"))


def main(mode: str, root: str, small: str, big: str) -> dict:
    store = open_store(root)
    publish_take(store, GOOD, small, {"n": 1})
    publish_cut(store, "LIGHTHOUSE", "SQ010", {"cut.mp4": small}, {}, "edit-1")
    if mode == "fsize":
        # Writes past the limit fail with EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
    elif mode == "readonly":
        subprocess.run(["mount", "-o", "remount,ro", root], check=True)
    errors = []
    for attempt in (
        lambda: publish_take(store, BAD, big, {"n": 2}),
        lambda: publish_cut(
            store, "LIGHTHOUSE", "SQ010", {"a.edl": small, "cut.mp4": big}, {}, "edit-2"
        ),
    ):
        try:
            attempt()
            errors.append(None)
        except StoreError as error:
            errors.append(str(error))
    fetched = fetch_take_media(store, GOOD, Path(os.environ["SCRATCH"]) / "good.mp4")
    return {
        "errors": errors,
        "good_intact": fetched.read_bytes() == Path(small).read_bytes(),
        "bad_visible": has_take(store, BAD),
        "versions": published_versions(store, "LIGHTHOUSE", "SQ010"),
        "latest": latest_version(store, "LIGHTHOUSE", "SQ010").version,
        "leftovers": sorted(
            str(path.relative_to(root))
            for path in Path(root).rglob("*")
            if ".tmp-" in path.name or "v002" in str(path)
        ),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
