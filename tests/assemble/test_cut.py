"""`cut_from_takes`: the version folder, placeholders for shots without media, refusals."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import av
import opentimelineio as otio
import pytest
from assemble_support import (
    RECORD_START,
    SOURCE_START,
    assert_sound_between,
    build_cut,
    decode,
    decode_audio,
    mean_abs_diff,
)
from audio_support import write_tone
from conftest import RATES, make_plan, write_takes
from PIL import Image
from synth import level_of, picture_level, read_code

from previz.assemble import (
    AssembleError,
    AssembleOptions,
    TakeMedia,
    cut_edit_key,
    cut_from_takes,
    read_cut_file,
    read_video_track,
    timeline_clips,
)
from previz.assemble.edit import frame_layers
from previz.media.encode import DNXHR_HQ, PRORES_422, ffmpeg_exe

LAYOUT = [(30, None), (23, "dissolve 6"), (31, None), (17, "fade 4"), (20, None)]
FAILED, MISSING = 1, 3


@pytest.mark.parametrize("fps", RATES)
def test_a_shot_without_media_is_a_card_of_its_exact_length(tmp_path, fps):
    plan, _, cut = build_cut(tmp_path, LAYOUT, fps=fps, failed=[FAILED], missing=[MISSING],
                             errors={FAILED: "CUDA out of memory"}, review=False)
    frames = decode(cut.media)["images"]
    assert len(frames) == plan.frames == read_video_track(cut.media).frames
    layers = frame_layers(plan)
    cards = {FAILED: [], MISSING: []}
    for number, (image, stack) in enumerate(zip(frames, layers, strict=True)):
        if len(stack) != 1 or not stack[0].opaque:
            continue  # a transition frame
        shot = stack[0].shot
        if shot in cards:
            cards[shot].append(image)
            assert read_code(image) is None, number  # not a take's frame
        else:
            assert read_code(image) == (shot + 1, stack[0].frame), number
    for index, images in cards.items():
        shot = plan.shots[index]
        assert images, shot.id
        card = images[0]
        assert card.mean() > 15 and card.std() > 10  # a labelled card, not black
        assert abs(picture_level(card) - level_of(index + 1)) > 20  # and not the take's grey
        red, green = card[..., 0].astype(float).mean(), card[..., 1].astype(float).mean()
        assert red > green + 10  # the placeholder's colour
        assert all(mean_abs_diff(image, card) < 2 for image in images)  # it holds still
        # the card is the shot's placeholder media, of the shot's length, from frame 1001
        media = cut.folder / f"{shot.id}_placeholder.mp4"
        assert cut.shots[index].media == media.name and cut.shots[index].placeholder
        placeholder = decode(media)
        assert len(placeholder["images"]) == shot.frames
        assert mean_abs_diff(placeholder["images"][shot.frames // 2], card) < 3
        assert placeholder["timecode"] == _source_timecode(plan.fps_fraction)
    assert cut.shots[FAILED].status == "failed" and cut.shots[FAILED].error == "CUDA out of memory"
    assert cut.shots[MISSING].status == "missing"
    # the dissolve out of the first shot blends into the card, the fade comes up from black
    middle = plan.shots[FAILED].record_in + 3
    assert read_code(frames[middle]) is None
    assert frames[plan.shots[MISSING].record_in].mean() < frames[
        plan.shots[MISSING].record_in + 4].mean()


def _source_timecode(fps) -> str:
    nominal = round(fps)
    seconds, frames = divmod(SOURCE_START, nominal)
    return f"00:{seconds // 60:02d}:{seconds % 60:02d}:{frames:02d}"


def test_the_version_folder_holds_every_file_media_first(tmp_path):
    plan, _, cut = build_cut(tmp_path, [(30, None), (24, "dissolve 6"), (30, None)],
                             failed=[2], notes={0: "hold longer"})
    names = list(cut.files)
    assert sorted(p.name for p in cut.folder.iterdir()) == sorted(names)
    assert cut.folder == tmp_path / "work" / "v001" and cut.version == "v001"
    # media first (shots, cut, review copy, contact sheet), then the cut files, the page last
    assert names[:3] == [s.media for s in cut.shots]
    assert names.index(cut.media.name) < names.index(cut.otio.name)
    assert names.index(cut.review.name) < names.index(cut.otio.name)
    assert names[-1] == cut.review_page.name == "review.html"
    assert cut.media.name == "SQ010_previz_v001.mp4"
    assert cut.review.name == "SQ010_previz_v001_review.mp4"
    # the manifest names each role by a file that is there, and says how the cut was made
    manifest = json.loads(json.dumps(cut.manifest))  # plain JSON
    for role, name in manifest["roles"].items():
        assert (cut.folder / name).is_file(), role
    assert manifest["cut"]["frames"] == plan.frames
    assert manifest["cut"]["timecode_start"] == RECORD_START
    assert manifest["provenance"]["digital_source_type"] == \
        "compositeWithTrainedAlgorithmicMedia"
    assert [s["id"] for s in manifest["shots"]] == [s.id for s in plan.shots]
    assert manifest["shots"][2]["placeholder"] is True
    assert manifest["shots"][0]["notes"] == "hold longer"
    # the contact sheet: one labelled cell per shot
    with Image.open(cut.contact_sheet) as sheet:
        assert sheet.format == "JPEG" and sheet.width >= 3 * 320
    # nothing is left beside the version folder
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["v001"]


@pytest.mark.parametrize("codec, name, pix_fmt", [(PRORES_422, "prores", "yuv422p10le"),
                                                  (DNXHR_HQ, "dnxhd", "yuv422p")])
def test_editorial_media_sits_beside_each_shot_for_relinking_by_name(tmp_path, codec, name,
                                                                     pix_fmt):
    plan, takes, cut = build_cut(tmp_path, [(30, None), (24, "dissolve 6"), (30, None)],
                                 failed=[2], review=False, editorial=codec)
    names = list(cut.files)
    for shot in cut.shots:  # a take's media, and the placeholder's, each as MOV
        mov = cut.folder / f"{shot.media.rsplit('.', 1)[0]}.mov"
        assert names.index(mov.name) < names.index(cut.otio.name)  # media before cut files
        with av.open(str(mov)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == name
            assert stream.codec_context.format.name == pix_fmt
            assert stream.metadata.get("timecode") == _source_timecode(plan.fps_fraction)
        moved, original = decode(mov)["images"], decode(cut.folder / shot.media)["images"]
        assert len(moved) == len(original) == shot.frames
        middle = shot.frames // 2
        assert mean_abs_diff(moved[middle], original[middle]) < 3  # the same picture
    # clip names are the media's names: the .mov files relink to them by name
    clips = [c[0] for c in timeline_clips(read_cut_file(cut.otio, plan.fps_fraction))]
    assert {c.rsplit(".", 1)[0] for c in clips} <= {p.stem for p in cut.folder.glob("*.mov")}
    # a version with editorial media is another version than one without
    assert cut_edit_key(plan, takes, AssembleOptions(review=False)) != cut.edit_key


def test_takes_that_do_not_fit_the_plan_are_all_named_and_nothing_is_written(tmp_path):
    plan = make_plan(tmp_path, [(30, None), (24, None), (30, None), (20, None)])
    takes = write_takes(plan, tmp_path / "takes")
    short = write_takes(make_plan(tmp_path, [(29, None)], name="short.yaml"),
                        tmp_path / "short")["SH0010"]
    takes["SH0010"] = TakeMedia(short.path, "rendered", takes["SH0010"].key)
    takes["SH0020"] = TakeMedia(tmp_path / "nowhere.mp4", "rendered", takes["SH0020"].key)
    takes["SH0030"] = TakeMedia(takes["SH0030"].path, "failed", takes["SH0030"].key)
    takes["SH0040"] = TakeMedia(None, "rendered", takes["SH0040"].key)
    work = tmp_path / "work"
    with pytest.raises(AssembleError) as caught:
        cut_from_takes(plan, takes, work)
    message = str(caught.value)
    for expected in ("SH0010", "has 29 frames, the plan needs 30", "SH0020", "does not exist",
                     "SH0030", "status 'failed' but a take file was given", "SH0040",
                     "no take file was given"):
        assert expected in message
    assert not work.exists() or not any(work.iterdir())


def _audio_samples(path) -> int:
    pcm = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a", "-ac", "1",
                          "-f", "s16le", "-"], capture_output=True, check=True)
    return len(pcm.stdout) // 2


def test_an_audio_bed_lies_under_both_copies_and_is_a_track_of_the_cut_files(tmp_path):
    (tmp_path / "cut").mkdir()
    tone = write_tone(tmp_path / "cut" / "bed.wav", 1.3)
    plan, _, cut = build_cut(tmp_path / "cut", [(30, None), (24, "dissolve 6"), (30, None)],
                             fps="29.97", audio=tone)
    fps = plan.fps_fraction
    slate = cut.manifest["cut"]["slate_frames"]
    assert slate > 0  # the default review copy has a slate
    bed = cut.folder / "SQ010_previz_v001_audio.wav"
    assert bed.is_file() and cut.manifest["roles"]["audio"] == bed.name
    assert list(cut.files).index(bed.name) < list(cut.files).index(cut.otio.name)
    # padded to the picture: the cut's length, and the slate's more in the review copy
    assert len(decode(cut.media)["images"]) == plan.frames
    assert _audio_samples(cut.media) == round(Fraction(plan.frames) / fps * 48000)
    assert len(decode(cut.review)["images"]) == slate + plan.frames
    assert _audio_samples(cut.review) == round(Fraction(slate + plan.frames) / fps * 48000)
    # the bed (1.3 s) starts on the cut's first frame: at 0 in the cut, after the slate in the
    # review copy; past its end, up to the picture's end (2.6 s), the padding is silent
    bed_samples, cut_samples = round(1.3 * 48000), round(Fraction(plan.frames) / fps * 48000)
    assert_sound_between(decode_audio(cut.media), 0, bed_samples, cut_samples)
    lead = round(Fraction(slate) / fps * 48000)
    assert_sound_between(decode_audio(cut.review), lead, lead + bed_samples, lead + cut_samples)
    # the .otio and the FCP XML carry it on an audio track from the first frame
    for path in (cut.otio, cut.xml):
        timeline = read_cut_file(path, fps)
        assert len(timeline_clips(timeline)) == len(plan.shots)
        sound = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
        assert len(sound) == 1, path.name
        clips = list(sound[0].find_clips())
        assert [c.name for c in clips] == [bed.name]
        assert clips[0].media_reference.target_url == bed.name
        assert round(clips[0].range_in_parent().start_time.value) == 0


def test_a_stand_in_says_which_kind_of_draft_it_is(tmp_path):
    from previz.assemble.assemble import _label, _Shot
    from previz.plan import plan_from_storyboard
    from previz.storyboard import storyboard_from_text

    plan = plan_from_storyboard(storyboard_from_text(
        "project: P\nsequence: S\nfps: 24\ndefaults: {model: synthetic, steps: 20}\n"
        "shots:\n  - {id: SH0010, duration: 12f, prompt: x}\n", "b.yaml", str(tmp_path)))
    shot = plan.shots[0]
    media = tmp_path / "take.mp4"
    labels = {name: _label(_Shot(shot, status, take, media, None))
              for name, status, take in (("final", "rendered", shot.selected_take),
                                         ("reduced", "draft", shot.reduced),
                                         ("draft", "draft", shot.fallback))}
    assert labels["final"].flag is None
    assert labels["reduced"].flag == "DRAFT 5/20 STEPS"
    assert labels["reduced"].bottom_left == f"synthetic  seed {shot.reduced.seed}"
    assert labels["draft"].flag == "DRAFT" and labels["draft"].bottom_left.startswith("draft ")
