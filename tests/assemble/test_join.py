"""Joining takes into the cut's picture, checked by decoding every frame with PyAV."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from assemble_support import assert_sound_between, decode_audio
from audio_support import write_tone
from conftest import HEIGHT, RATES, WIDTH, write_takes
from synth import level_of, picture_level, read_code, write_take

from previz.assemble import join_cut, read_video_track
from previz.assemble.edit import frame_layers
from previz.assemble.ffmpeg import audio_samples
from previz.media.encode import H264, H264_FAST, ffmpeg_exe


def decode(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        return {
            "images": [f.to_ndarray(format="rgb24") for f in frames],
            "keyframes": [i for i, f in enumerate(frames) if f.key_frame],
            "pts": [f.pts for f in frames],
            "rate": stream.average_rate,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "timecode": stream.metadata.get("timecode") or container.metadata.get("timecode"),
            "audio": [(s.codec_context.name, s.rate) for s in container.streams.audio],
        }


def expected_picture(plan, frame: int) -> list[tuple[int, int, Fraction]]:
    """(take id, take frame, alpha) layers of a cut frame: take id n is shot n."""
    return [(layer.shot + 1, layer.frame, layer.alpha) for layer in frame_layers(plan)[frame]]


def check_frames(plan, decoded: dict) -> None:
    """Every pure frame shows the right frame of the right take; every blended frame has the
    blend of the right takes' levels."""
    images = decoded["images"]
    assert len(images) == plan.frames
    layers = frame_layers(plan)
    for number, (image, stack) in enumerate(zip(images, layers, strict=True)):
        if len(stack) == 1 and stack[0].opaque:
            assert read_code(image) == (stack[0].shot + 1, stack[0].frame), f"cut frame {number}"
            continue
        level = 0.0
        for layer in stack:
            alpha = float(layer.alpha)
            level = level * (1 - alpha) + level_of(layer.shot + 1) * alpha
        assert picture_level(image) == pytest.approx(level, abs=4), f"cut frame {number}"


@pytest.mark.parametrize("fps", RATES)
def test_cuts_join_by_stream_copy_frame_exact(plan_factory, tmp_path, fps):
    plan = plan_factory([(30, None), (17, None), (41, None), (25, None)], fps=fps)
    takes = write_takes(plan, tmp_path / "takes")
    out = tmp_path / "cut.mp4"
    report = join_cut(plan, [t.path for t in takes.values()], out, scratch=tmp_path / "scratch")
    assert report.encoded_frames == 0 and report.copied_frames == plan.frames
    decoded = decode(out)
    assert decoded["size"] == (WIDTH, HEIGHT)
    assert decoded["rate"] == plan.fps_fraction
    assert decoded["timecode"] == "01:00:00:00"
    check_frames(plan, decoded)
    # each take starts with its own keyframe; timestamps lie on an exact frame grid
    assert decoded["keyframes"][:2] == [0, 24] and 30 in decoded["keyframes"]
    steps = np.diff(decoded["pts"])
    assert len(set(steps.tolist())) == 1
    track = read_video_track(out)
    assert track.frames == plan.frames and track.fps == plan.fps_fraction


@pytest.mark.parametrize("fps", RATES)
def test_dissolves_and_fades_blend_and_re_encode_only_what_they_touch(plan_factory, tmp_path,
                                                                      fps):
    plan = plan_factory([(40, "fade 8"), (60, None), (50, "dissolve 12"), (30, None),
                         (45, "dissolve 6, out 9")], fps=fps)
    takes = write_takes(plan, tmp_path / "takes")
    out = tmp_path / "cut.mp4"
    report = join_cut(plan, [t.path for t in takes.values()], out, scratch=tmp_path / "scratch")
    decoded = decode(out)
    assert decoded["rate"] == plan.fps_fraction and decoded["timecode"] == "01:00:00:00"
    check_frames(plan, decoded)
    # fade: 8 frames + 16 up to the keyframe at 24; dissolve 12: 12 + 12; dissolve 6: 6 + 18;
    # the tail's fade to black: its last 9 frames
    assert report.encoded_frames == 24 + 24 + 24 + 9
    assert report.copied_frames == plan.frames - report.encoded_frames
    # a cut does not blend: the frames either side of it are pure frames of their takes
    cut_at = plan.shots[1].record_in
    assert read_code(decoded["images"][cut_at - 1]) == (1, 39)
    assert read_code(decoded["images"][cut_at]) == (2, 0)
    # a dissolve does: its middle frame is neither take
    middle = plan.shots[2].record_in + 6
    assert read_code(decoded["images"][middle]) is None
    assert level_of(2) != level_of(3)


def test_lighthouse_sequence_at_23976(tmp_path):
    from previz.plan import plan_from_storyboard
    from previz.storyboard import load_storyboard

    plan = plan_from_storyboard(load_storyboard("storyboards/lighthouse_sq020.yaml"))
    plan = plan.model_copy(update={"width": 128, "height": 72})
    takes = write_takes(plan, tmp_path / "takes")
    out = tmp_path / "cut.mp4"
    join_cut(plan, [t.path for t in takes.values()], out, scratch=tmp_path / "scratch")
    decoded = decode(out)
    assert decoded["rate"] == Fraction(24000, 1001)
    check_frames(plan, decoded)


def test_takes_with_other_stream_parameters_are_encoded_again(plan_factory, tmp_path):
    plan = plan_factory([(30, None), (30, None), (30, None)])
    takes = write_takes(plan, tmp_path / "takes")
    odd = H264.__class__(**{**H264.__dict__, "x264_params": (("ref", "3"), ("bframes", "0"),
                                                             ("scenecut", "0"))})
    write_take(takes["SH0020"].path, 2, 30, plan.fps_fraction, WIDTH, HEIGHT,
               codec_settings=odd)
    assert read_video_track(takes["SH0020"].path).config != \
        read_video_track(takes["SH0010"].path).config
    out = tmp_path / "cut.mp4"
    report = join_cut(plan, [t.path for t in takes.values()], out, scratch=tmp_path / "scratch")
    assert report.encoded_frames == 30 and report.copied_frames == 60
    assert "SH0020" in report.warnings[0]
    check_frames(plan, decode(out))


def test_fast_and_default_settings_join(plan_factory, tmp_path):
    """Draft takes (H264_FAST) and model takes (H264) share headers: they join by copy."""
    plan = plan_factory([(30, None), (30, None)])
    takes = write_takes(plan, tmp_path / "takes")
    write_take(takes["SH0020"].path, 2, 30, plan.fps_fraction, WIDTH, HEIGHT,
               codec_settings=H264_FAST)
    report = join_cut(plan, [t.path for t in takes.values()], tmp_path / "cut.mp4",
                      scratch=tmp_path / "scratch")
    assert report.encoded_frames == 0


@pytest.mark.parametrize(("seconds", "lead_frames"), [(0.7, 0), (0.7, 10), (9.0, 0)])
def test_audio_bed_is_padded_or_trimmed_to_the_cut(plan_factory, tmp_path, seconds,
                                                    lead_frames):
    tone = write_tone(tmp_path / "bed.wav", seconds)
    plan = plan_factory([(40, None), (33, "dissolve 6")], fps="29.97", audio=tone)
    assert plan.audio == str(tone.resolve())
    takes = write_takes(plan, tmp_path / "takes")
    out = tmp_path / "cut.mp4"
    lead = audio_samples(lead_frames, plan.fps_fraction)
    join_cut(plan, [t.path for t in takes.values()], out, scratch=tmp_path / "scratch",
             audio=(Path(plan.audio), lead, audio_samples(plan.frames, plan.fps_fraction)))
    expected = round(Fraction(plan.frames) / plan.fps_fraction * 48000)
    # the bed sounds from the lead (frame 0, or `lead_frames` in) for its own length, cut off
    # at the picture's end; before it and past it the track is silent
    samples = decode_audio(out)
    assert len(samples) >= expected
    assert_sound_between(samples, lead, min(lead + round(seconds * 48000), expected), expected)
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.rate == 48000 and audio.time_base == Fraction(1, 48000)
        assert audio.duration == expected  # the track's length after its edit list
    # ffmpeg applies the edit list (encoder delay and tail) when decoding: exactly the cut
    pcm = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(out), "-map", "0:a",
                          "-ac", "1", "-f", "s16le", "-"], capture_output=True, check=True)
    assert len(pcm.stdout) // 2 == expected
    assert len(decode(out)["images"]) == plan.frames
