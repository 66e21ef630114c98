"""Hand a cut to the store, and the whole of stage 5 as `previz render` runs it.

    version = publish_cut(cut, store)          # media first, manifest last (DESIGN §5)
    summary = assemble_and_publish(plan, store, report)

A cut names its version inside its files (file names, slate, timeline name), so the version is
claimed *before* the cut is assembled: `assemble_and_publish` reserves the next version, builds
the cut for it and publishes into that claim; an edit already published is reused without
assembling anything.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from previz.assemble.assemble import cut_edit_key, cut_from_takes
from previz.assemble.review import PAGE_NAME, review_link
from previz.assemble.types import AssembleError, AssembleOptions, Cut, TakeMedia
from previz.plan.types import RenderPlan

__all__ = ["publish_cut", "assemble_and_publish", "takes_from_report"]


def publish_cut(cut: Cut, target: Any):
    """Publish the cut's version folder: every file in order (media first), then the manifest.

    `target` is a `CutDraft` already claimed for `cut.version` (as `assemble_and_publish` does),
    or a store: then the next version is claimed, and it must be the one the cut was assembled
    for. Returns the store's `CutVersion`.
    """
    from previz.store import CutDraft, reserve_version

    if isinstance(target, CutDraft):
        return _publish_into(cut, target)  # the caller owns the claim
    with reserve_version(target, cut.project, cut.sequence) as draft:
        return _publish_into(cut, draft)


def _publish_into(cut: Cut, draft: Any):
    if draft.name != cut.version:
        raise AssembleError(
            f"{cut.name} was assembled as {cut.version} but the store's next version of "
            f"{cut.project}/{cut.sequence} is {draft.name} — assemble again with "
            f"version={draft.name!r} (assemble_and_publish does this for you)")
    for name, path in cut.files.items():
        draft.put(name, path)
    return draft.publish(cut.manifest, cut.edit_key)


def takes_from_report(plan: RenderPlan, store: Any, report: Any,
                      folder: Path) -> dict[str, TakeMedia | None]:
    """Fetch the take each shot shows (per the engine's report) from the store into `folder`."""
    from previz.store import fetch_take_media, has_take

    outcomes = {s.id: s for s in getattr(report, "shots", ())}
    takes: dict[str, TakeMedia | None] = {}
    for shot in plan.shots:
        outcome = outcomes.get(shot.id)
        if outcome is None:
            takes[shot.id] = None
            continue
        key = outcome.take or shot.selected_take.key
        if outcome.status != "failed" and has_take(store, key):
            path = fetch_take_media(store, key, folder / f"{shot.id}-{key[:16]}.mp4")
            status = outcome.status if outcome.status != "skipped" else "cached"
            takes[shot.id] = TakeMedia(path, status, key, outcome.error)
        else:
            status = "failed" if outcome.status == "failed" else "missing"
            takes[shot.id] = TakeMedia(None, status, key, outcome.error)
    return takes


def assemble_and_publish(plan: RenderPlan, store: Any, report: Any, *,
                         options: AssembleOptions | None = None,
                         workdir: str | Path | None = None,
                         link_expiry_s: int | None = None) -> dict[str, Any]:
    """Stage 5 as `previz render` runs it. Returns where everything is:
    {version, reused, folder, cut, review, review_page, otio, edl, xml, contact_sheet, links}.

    1. open the store; fetch the take each shot shows;
    2. the latest version, when it is this edit, is reused as it is;
    3. claim the next version and assemble the cut for it;
    4. publish: media first, manifest last;
    5. links to the files (presigned on S3; the review page's link carries them).
    """
    from previz.store import (
        DEFAULT_LINK_EXPIRY_S,
        cut_links,
        open_store,
        reserve_version,
        unchanged_version,
    )

    options = options or AssembleOptions()
    store = open_store(store) if isinstance(store, str) else store
    take_status = dict(getattr(report, "take_status", {}) or {})
    options = replace(options, take_status={**take_status, **options.take_status})
    with tempfile.TemporaryDirectory(prefix="previz-assemble-", dir=workdir) as scratch:
        scratch_path = Path(scratch)
        # 1. the takes
        takes = takes_from_report(plan, store, report, scratch_path / "takes")
        # 2. reuse the latest version when it is this edit
        version = unchanged_version(store, plan.project, plan.sequence,
                                    cut_edit_key(plan, takes, options))
        if version is None:
            # 3. claim, assemble
            with reserve_version(store, plan.project, plan.sequence) as draft:
                cut = cut_from_takes(plan, takes, scratch_path / "cut",
                                     options=replace(options, version=draft.name))
                # 4. publish
                version = publish_cut(cut, draft)
    # 5. links
    links = cut_links(store, version, link_expiry_s or DEFAULT_LINK_EXPIRY_S)
    return _summary(store, version, links)


def _summary(store: Any, version: Any, links: Mapping[str, str]) -> dict[str, Any]:
    from previz.store import read_manifest

    manifest = read_manifest(store, version.project, version.sequence, version.version)
    roles = manifest.get("roles", {})
    page = links.get(PAGE_NAME)
    if page and not page.startswith("file:"):
        page = review_link(page, links)
    return {
        "version": version.name,
        "reused": version.reused,
        "folder": version.prefix,
        "cut": links.get(roles.get("cut", "")),
        "review": page,
        "review_copy": links.get(roles.get("review", "")),
        "otio": links.get(roles.get("otio", "")),
        "edl": links.get(roles.get("edl", "")),
        "xml": links.get(roles.get("xml", "")),
        "contact_sheet": links.get(roles.get("contact_sheet", "")),
        "links": dict(links),
    }
