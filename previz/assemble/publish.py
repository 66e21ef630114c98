"""Hand a cut to the store, and the whole of stage 5 as `previz render` runs it.

    version = publish_cut(cut, store)          # media first, manifest last (DESIGN §5)
    published = assemble_and_publish(plan, store, report)   # a PublishedCut

A cut names its version inside its files (file names, slate, timeline name), so the version is
claimed *before* the cut is assembled: `assemble_and_publish` reserves the next version, builds
the cut for it and publishes into that claim; an edit already published is reused without
assembling anything.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from previz.assemble.assemble import cut_edit_key, cut_from_takes
from previz.assemble.pieces import StorePieces
from previz.assemble.review import PAGE_NAME, review_link
from previz.assemble.types import AssembleError, AssembleOptions, Cut, TakeMedia
from previz.plan.types import RenderPlan

if TYPE_CHECKING:
    from previz.engine.types import RenderReport

__all__ = ["publish_cut", "assemble_and_publish", "takes_from_report", "PublishedCut"]


@dataclass(frozen=True)
class PublishedCut:
    """Where a published version's files are: links (presigned on S3) by role, and by name."""

    version: str
    reused: bool  # the latest version already was this edit: nothing was assembled
    folder: str
    cut: str | None = None
    review: str | None = None  # the review page (its link carries the media's on S3)
    review_copy: str | None = None
    otio: str | None = None
    edl: str | None = None
    xml: str | None = None
    contact_sheet: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)

    def without_signatures(self) -> PublishedCut:
        """Presigned links are bearer credentials: they go to a terminal, never into a log (a
        Ray job's output, a CI log, a pipe). Elsewhere the object's plain URL is shown."""
        def plain(link: str | None) -> str | None:
            if link is not None and "X-Amz-Signature=" in link:
                return link.split("?", 1)[0].split("#", 1)[0]
            return link

        return replace(self, links={}, **{role: plain(getattr(self, role)) for role in (
            "cut", "review", "review_copy", "otio", "edl", "xml", "contact_sheet")})


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
    from previz.store import NotFound
    from previz.store.keys import take_object
    from previz.store.takes import MEDIA_NAME

    for name, path in cut.files.items():
        take = cut.take_media.get(name)
        if take is not None:
            try:
                draft.copy(name, take_object(take, MEDIA_NAME))
                continue
            except NotFound:
                pass  # assembled from files that are not takes of this store: upload them
        draft.put(name, path)
    return draft.publish(cut.manifest, cut.edit_key)


def takes_from_report(plan: RenderPlan, store: Any, report: RenderReport,
                      folder: Path) -> dict[str, TakeMedia | None]:
    """Fetch the take each shot shows (per the engine's report) from the store into `folder`."""
    from previz.store import fetch_take_media, has_take
    from previz.store.takes import fetch_take_sound

    outcomes = {s.id: s for s in report.shots}
    takes: dict[str, TakeMedia | None] = {}
    for shot in plan.shots:
        outcome = outcomes.get(shot.id)
        if outcome is None:
            takes[shot.id] = None
            continue
        key = outcome.take or shot.selected_take.key
        failed = outcome.status == "failed"
        if not failed and has_take(store, key):
            path = fetch_take_media(store, key, folder / f"{shot.id}-{key[:16]}.mp4")
            sound = (fetch_take_sound(store, key, folder / f"{shot.id}-{key[:16]}.wav")
                     if shot.sound_source == "generated" else None)
            takes[shot.id] = TakeMedia(path, outcome.status.value, key, outcome.error, sound,
                                       _controls(store, shot, key, folder))
        else:
            takes[shot.id] = TakeMedia(None, "failed" if failed else "missing", key,
                                       outcome.error)
    return takes


_CONTROL_LABELS = {"mask": "mask", "pose_video": "performance (pose)",
                   "face_video": "performance (face)", "background_video": "plate"}


def _controls(store: Any, shot, key: str, folder: Path) -> tuple[tuple[str, Path], ...]:
    """The previews of what steered a take (its record's `controls`: a layout's control video,
    a mask), fetched for the review page. Only for shots with a layout or a mask: the others'
    records are not read."""
    from previz.store.takes import read_take_record

    if not any(c.video or c.role == "mask" for t in shot.selected_take.tasks
               for c in t.conditioning):
        return ()
    controls = []
    for number, control in enumerate(read_take_record(store, key).get("controls", []), 1):
        label = _CONTROL_LABELS.get(control["role"]) or f"layout ({control['control']})"
        controls.append((label, store.get_file(
            control["preview"], folder / f"{shot.id}-{key[:16]}-control{number}.mp4")))
    return tuple(controls)


def assemble_and_publish(plan: RenderPlan, store: Any, report: RenderReport, *,
                         options: AssembleOptions | None = None,
                         workdir: str | Path | None = None,
                         link_expiry_s: int | None = None) -> PublishedCut:
    """Stage 5 as `previz render` runs it. Returns where everything is.

    1. open the store; fetch the take each shot shows;
    2. the latest version, when it is this edit, is reused as it is;
    3. claim the next version and assemble the cut for it (reusing the store's pieces of earlier
       cuts: see previz.assemble.pieces);
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
    take_status = {key: status.value for key, status in report.take_status.items()}
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
                                     options=replace(options, version=draft.name),
                                     take_status=take_status, pieces=StorePieces(store))
                # 4. publish
                version = publish_cut(cut, draft)
    # 5. links
    links = cut_links(store, version, link_expiry_s or DEFAULT_LINK_EXPIRY_S)
    return _summary(store, version, links)


def _summary(store: Any, version: Any, links: Mapping[str, str]) -> PublishedCut:
    from previz.store import read_manifest

    manifest = read_manifest(store, version.project, version.sequence, version.version)
    roles = manifest.get("roles", {})
    page = links.get(PAGE_NAME)
    if page and not page.startswith("file:"):
        page = review_link(page, links)
    return PublishedCut(
        version=version.name, reused=version.reused, folder=version.prefix,
        cut=links.get(roles.get("cut", "")), review=page,
        review_copy=links.get(roles.get("review", "")), otio=links.get(roles.get("otio", "")),
        edl=links.get(roles.get("edl", "")), xml=links.get(roles.get("xml", "")),
        contact_sheet=links.get(roles.get("contact_sheet", "")), links=dict(links))
