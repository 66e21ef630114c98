"""The cut files (.otio, CMX 3600 .edl, FCP 7 .xml), read back with OpenTimelineIO."""

from __future__ import annotations

import os
import re
import shutil

import opentimelineio as otio
import pytest
from assemble_support import RECORD_START, SOURCE_START, build_cut, nominal_timecode
from conftest import RATES

from previz.assemble import read_cut_file, timeline_clips

# A head fade, a cut, a dissolve, a fade into a failed shot, a dissolve out of it, a cut.
LAYOUT = [(30, "fade 6"), (20, None), (40, "dissolve 8"), (25, "fade 6"), (30, "dissolve 10"),
          (24, None)]
DRAFT, FAILED = 1, 3
NOTE = 'more fog & "less" <b>sun</b>'
PROMPTS = {0: "a lighthouse at dusk, waves <crashing> & gulls",
           2: "the keeper's lamp in {LAMP_ROOM}, close"}
LOCATIONS = {"LAMP_ROOM": "the glass lamp room"}
SUFFIXES = [".otio", ".edl", ".xml"]


@pytest.fixture(scope="module", params=RATES)
def edited(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"editorial-{request.param}")
    plan, _, cut = build_cut(folder, LAYOUT, fps=request.param, failed=[FAILED],
                             draft=[DRAFT], notes={DRAFT: NOTE}, prompts=PROMPTS,
                             locations=LOCATIONS, errors={FAILED: "worker lost"}, review=False)
    return plan, cut


def expected_clips(plan, cut) -> list[tuple[str, int, int, int]]:
    """(media name, record frame, source in, frames shown) of each shot, from the plan: a shot
    followed by a dissolve is shown up to where the dissolve starts (CMX convention)."""
    clips = []
    for index, shot in enumerate(plan.shots):
        following = plan.shots[index + 1] if index + 1 < len(plan.shots) else None
        shown = (following.record_in - shot.record_in
                 if following is not None and following.transition.type == "dissolve"
                 else shot.frames)
        clips.append((cut.shots[index].media, shot.record_in, SOURCE_START, shown))
    return clips


def shown_clips(timeline: otio.schema.Timeline) -> list[otio.schema.Clip]:
    """The clips that last at least a frame (an EDL's head fade is read with a zero-length black
    event before it, which the reader turns into a zero-length clip)."""
    return [c for c in timeline.find_clips() if round(c.source_range.duration.value) > 0]


def video_track(timeline: otio.schema.Timeline) -> otio.schema.Track:
    tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    assert len(tracks) == 1
    return tracks[0]


def transitions(timeline: otio.schema.Timeline) -> list[tuple[str, int]]:
    """(name of the clip a transition leads into, its frames) for every transition."""
    found, pending = [], None
    for item in video_track(timeline):
        if isinstance(item, otio.schema.Transition):
            pending = round(item.out_offset.value + item.in_offset.value)
        elif isinstance(item, otio.schema.Clip) and pending is not None:
            found.append((item.name, pending))
            pending = None
    return found


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_cut_files_read_back_to_the_plan(edited, suffix):
    plan, cut = edited
    path = cut.folder / f"{cut.name}{suffix}"
    assert path == {".otio": cut.otio, ".edl": cut.edl, ".xml": cut.xml}[suffix]
    timeline = read_cut_file(path, cut.fps)
    # the same clips, in the same order, at the same record and source frames as the plan
    assert timeline_clips(timeline) == expected_clips(plan, cut)
    assert [c.name for c in shown_clips(timeline)] == [s.media for s in cut.shots]
    # the dissolves and fades where the plan has them, of its lengths
    assert transitions(timeline) == [(cut.shots[i].media, shot.transition.frames)
                                     for i, shot in enumerate(plan.shots)
                                     if shot.transition.type != "cut"]
    # the rate survives (23.976 and 29.97 are not 24 and 30)
    rates = {round(c.source_range.duration.rate, 3) for c in shown_clips(timeline)}
    assert rates == {round(float(plan.fps_fraction), 3)}
    if suffix != ".edl":  # an EDL carries record timecode on its events (checked below)
        start = timeline.global_start_time
        assert otio.opentime.to_timecode(start, start.rate, drop_frame=False) == RECORD_START


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_clip_names_are_media_files_referenced_relatively(edited, suffix, tmp_path):
    plan, cut = edited
    moved = tmp_path / "elsewhere" / "renamed-version-folder"
    shutil.copytree(cut.folder, moved)
    timeline = read_cut_file(moved / f"{cut.name}{suffix}", cut.fps)
    clips = shown_clips(timeline)
    assert len(clips) == len(plan.shots)
    for clip, shot in zip(clips, cut.shots, strict=True):
        reference = clip.media_reference
        assert isinstance(reference, otio.schema.ExternalReference), clip.name
        url = reference.target_url
        assert url == clip.name == shot.media == os.path.basename(url)
        assert "://" not in url and not os.path.isabs(url)
        resolved = moved / url
        assert resolved.is_file()
        assert resolved.read_bytes() == (cut.folder / shot.media).read_bytes()
    # nothing in the file points back at where the cut was assembled
    text = (moved / f"{cut.name}{suffix}").read_text(encoding="utf-8")
    assert str(cut.folder) not in text and str(cut.folder.parent) not in text


def test_otio_clips_carry_how_each_shot_was_made(edited):
    plan, cut = edited
    timeline = read_cut_file(cut.otio, cut.fps)
    clips = list(timeline.find_clips())
    for index, (clip, shot) in enumerate(zip(clips, plan.shots, strict=True)):
        info = clip.metadata["previz"]
        assert info["shot"] == shot.id
        written = PROMPTS.get(index, f"shot {index + 1} of the test sequence")
        # What the model read ({NAME}s expanded), and the storyboard's words beside it.
        assert info["prompt_template"] == written
        assert info["prompt"] == written.replace("{LAMP_ROOM}", LOCATIONS["LAMP_ROOM"])
        assert info["model"] == "draft"
        if index == FAILED:
            assert info["status"] == "failed" and info["placeholder"] is True
            assert info["take_key"] is None and info["seed"] is None
            assert info["error"] == "worker lost"
        else:
            assert info["status"] == ("draft" if index == DRAFT else "rendered")
            assert info["take_key"] == shot.selected_take.key
            assert info["seed"] == shot.selected_take.seed == 7
            assert info["placeholder"] is False and info["error"] is None
    # the timeline says which cut it is
    assert timeline.metadata["previz"]["cut"] == cut.name


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_notes_become_markers_on_their_clip(edited, suffix):
    plan, cut = edited
    timeline = read_cut_file(cut.folder / f"{cut.name}{suffix}", cut.fps)
    clips = shown_clips(timeline)
    markers = {clip.name: [m.name for m in clip.markers] for clip in clips}
    assert markers == {shot.media: ([NOTE] if i == DRAFT else []) for i, shot in
                       enumerate(cut.shots)}
    marker = clips[DRAFT].markers[0]
    # on the shot's first frame, inside the clip
    assert round(marker.marked_range.start_time.value) == SOURCE_START


EVENT = re.compile(r"^(\d{3})\s+(\S+)\s+V\s+(C|D \d{3})\s+(\S+) (\S+) (\S+) (\S+)$")


def test_edl_is_cmx3600_with_record_timecode_from_one_hour(edited):
    plan, cut = edited
    fps = plan.fps_fraction
    lines = cut.edl.read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"TITLE: {cut.name}"
    assert lines[1] == "FCM: NON-DROP FRAME"
    events = [EVENT.match(line) for line in lines if re.match(r"^\d{3} ", line)]
    assert all(events), lines
    start = 3600 * round(fps)
    # the first event starts at 01:00:00:00 and the last ends at the cut's length after it
    assert events[0].group(6) == RECORD_START
    assert events[-1].group(7) == nominal_timecode(start + plan.frames, fps)
    assert all(len(e.group(2)) <= 8 for e in events)  # reel names
    # the head fade is the standard pair, event 001: from black to the first clip, nothing
    # before it (no zero-length black event of its own)
    assert [(e.group(1), e.group(2), e.group(3)) for e in events[:3]] == [
        ("001", "BL", "C"), ("001", cut.shots[0].media.split("_")[0] + "T1",
                             f"D {plan.shots[0].transition.frames:03d}"),
        ("002", cut.shots[1].media.replace("_", "").replace(".mp4", "").upper()[:8], "C")]
    # every shot's event records in at its plan frame, from the source's frame 1001
    for shot, media in zip(plan.shots, (s.media for s in cut.shots), strict=True):
        event = next(i for i, line in enumerate(lines)
                     if line.endswith(f"CLIP NAME:  {media}")) - 1
        while not EVENT.match(lines[event]):
            event -= 1
        match = EVENT.match(lines[event])
        assert match.group(6) == nominal_timecode(start + shot.record_in, fps), media
        assert match.group(4) == nominal_timecode(SOURCE_START, fps), media
        assert match.group(3) == ("C" if shot.transition.type == "cut"
                                  else f"D {shot.transition.frames:03d}")


def test_fades_to_black_in_every_cut_file(tmp_path):
    """A dip to black in the middle (SH0020 fades out, SH0030 fades in) and a tail fade."""
    plan, _, cut = build_cut(tmp_path, [(30, "fade 6"), (40, "dissolve 8, out 4"),
                                        (25, "fade 6"), (24, "out 6")], review=False)
    fps = plan.fps_fraction
    expected = [(s.media, p.record_in, SOURCE_START, p.frames - p.fade_out)
                for s, p in zip(cut.shots, plan.shots, strict=True)]
    expected[0] = (*expected[0][:3], plan.shots[1].record_in)  # up to the dissolve's start
    # .otio: each fade to black a transition into black as long as the fade
    timeline = read_cut_file(cut.otio, fps)
    assert timeline_clips(timeline) == expected
    outs = [(item.metadata["previz"]["type"], round(item.out_offset.value))
            for item in video_track(timeline) if isinstance(item, otio.schema.Transition)
            and item.metadata["previz"]["type"] == "fade_to_black"]
    assert outs == [("fade_to_black", 4), ("fade_to_black", 6)]
    # .edl: a dissolve from the clip to BL, read back as the clip, then black
    edl = read_cut_file(cut.edl, fps)
    media = [c for c in timeline_clips(edl) if c[0] != "BLACK"]
    assert media == expected
    black = [(c[1], c[3]) for c in timeline_clips(edl) if c[0] == "BLACK"]
    assert black == [(plan.shots[1].record_out - 4, 4), (plan.frames - 6, 6)]
    start = 3600 * round(fps)
    assert (f"BL       V     D 004    00:00:00:00 00:00:00:04 "
            f"{nominal_timecode(start + plan.shots[1].record_out - 4, fps)} "
            f"{nominal_timecode(start + plan.shots[1].record_out, fps)}") in cut.edl.read_text()
    # .xml: the fade an end-black transition item; every clip ends where the plan says (read
    # from the file: OpenTimelineIO's reader places clips after a fade to black early)
    text = cut.xml.read_text()
    ends = {m[1]: int(m[2]) for m in re.finditer(
        r"<clipitem[^>]*>.*?<name>([^<]*)</name>.*?<end>(-?\d+)</end>", text, re.S)}
    assert ends == {s.media: p.record_in + p.frames - p.fade_out - (
        p.frames - (plan.shots[1].record_in - p.record_in) if i == 0 else 0)
        for i, (s, p) in enumerate(zip(cut.shots, plan.shots, strict=True))}
    assert text.count("<alignment>end-black</alignment>") == 2
