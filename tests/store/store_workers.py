"""Process entry points for the concurrency tests (spawned: they must live in a module)."""

from __future__ import annotations

import os
import traceback


def race_take_then_cut(
    uri: str, index: int, key: str, media: str, cut: str, barrier, results
) -> None:
    """Publish the same take as every other worker, then a cut of the same sequence."""
    try:
        from previz.store import open_store, publish_cut, publish_take

        store = open_store(uri)
        barrier.wait(timeout=60)
        take = publish_take(store, key, media, {"worker": f"w{index}", "pid": os.getpid()})
        barrier.wait(timeout=60)
        version = publish_cut(
            store,
            "LIGHTHOUSE",
            "SQ010",
            {"SQ010_previz_{version}.mp4": cut},
            {"worker": index},
            f"edit-{index}",
        )
        results.put((index, take.created, take.record["worker"], version.version, None))
    except BaseException:
        results.put((index, None, None, None, traceback.format_exc()))
