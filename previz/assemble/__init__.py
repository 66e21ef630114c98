"""Stage 5, assemble: the selected takes become an edited cut and the files editors import.

    cut = cut_from_takes(plan, {"SH0010": TakeMedia(path, "rendered", key), ...}, workdir)
    publish_cut(cut, store)                      # media first, manifest last
    assemble_and_publish(plan, store, report)    # what `previz render` runs

Where shots meet with a cut the takes are joined by stream copy; dissolves, fades and
placeholders re-encode only the frames they touch. Beside the cut: a review copy with burn-ins,
OTIO / CMX 3600 EDL / FCP 7 XML, a contact sheet and a self-contained review page.
"""

from previz.assemble.assemble import (
    JoinReport,
    cut_edit_key,
    cut_from_takes,
    cut_name,
    join_cut,
)
from previz.assemble.editorial import read_cut_file, timeline_clips
from previz.assemble.mp4 import Mp4Error, VideoTrack, read_video_track
from previz.assemble.pieces import PieceCache, StorePieces
from previz.assemble.publish import (
    PublishedCut,
    assemble_and_publish,
    publish_cut,
    takes_from_report,
)
from previz.assemble.review import review_link
from previz.assemble.types import (
    REVIEW_H264,
    AssembleError,
    AssembleOptions,
    Cut,
    CutShot,
    TakeMedia,
)

__all__ = [
    "cut_from_takes",
    "publish_cut",
    "assemble_and_publish",
    "PublishedCut",
    "takes_from_report",
    "join_cut",
    "JoinReport",
    "cut_edit_key",
    "cut_name",
    "TakeMedia",
    "AssembleOptions",
    "Cut",
    "CutShot",
    "AssembleError",
    "REVIEW_H264",
    "read_cut_file",
    "timeline_clips",
    "review_link",
    "read_video_track",
    "VideoTrack",
    "Mp4Error",
    "PieceCache",
    "StorePieces",
]
