"""Take encoding with the real ffmpeg binary, checked by decoding with PyAV."""

from __future__ import annotations

import io
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from PIL import Image

from previz.media.encode import (
    DNXHR_HQ,
    H264,
    H264_FAST,
    PRORES_422,
    EncodeError,
    decode_frames,
    encode_take,
    ffmpeg_exe,
    h264_level,
    iter_frames,
    last_frame,
    probe_video,
    thumbnail,
    timecode_of,
)

NTSC_FILM = Fraction(24000, 1001)


def moving_frames(count: int, width: int = 64, height: int = 48, colour=(200, 60, 40)):
    """A coloured square sliding right over a gradient: each frame distinct, easy to encode."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                     np.full_like(x, 90)], axis=-1).astype(np.uint8)
    frames = np.repeat(base[None], count, axis=0)
    for index in range(count):
        left = (index * 2) % (width - 12)
        frames[index, 10:22, left:left + 12] = colour
    return frames


def stream_info(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "profile": stream.codec_context.profile,
            "rate": stream.average_rate,
            "pix_fmt": stream.codec_context.pix_fmt,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "frames": len(frames),
            "keyframes": [i for i, f in enumerate(frames) if f.key_frame],
            "first_type": frames[0].pict_type,
            "timecode": stream.metadata.get("timecode") or container.metadata.get("timecode"),
            "extradata": bytes(stream.codec_context.extradata or b""),
            "colorspace": frames[0].colorspace,
        }


def test_h264_take_has_the_fixed_stream_parameters(tmp_path):
    frames = moving_frames(30)
    take = encode_take(frames, NTSC_FILM, tmp_path / "take.mp4", width=64, height=48)
    info = stream_info(take.path)
    assert take.frames == 30 and info["frames"] == 30
    assert info["rate"] == NTSC_FILM  # exact rational rate, not 23.976
    assert info["codec"] == "h264" and info["profile"] == "High"
    assert info["pix_fmt"] == "yuv420p" and info["size"] == (64, 48)
    assert info["keyframes"][0] == 0 and info["first_type"] == PictureType.I
    assert info["timecode"] == "00:00:41:17" == take.timecode
    assert info["colorspace"] == 1  # BT.709 tagged
    assert take.sha256 == __import__("hashlib").sha256(take.path.read_bytes()).hexdigest()


def test_timecode_of_source_frames():
    assert timecode_of(1001, Fraction(24)) == "00:00:41:17"
    assert timecode_of(1001, NTSC_FILM) == "00:00:41:17"  # non-drop, counting 24 a second
    assert timecode_of(1001, Fraction(25)) == "00:00:40:01"
    assert timecode_of(0, Fraction(30)) == "00:00:00:00"
    assert timecode_of(24 * 3600 + 24 * 61 + 3, Fraction(24)) == "01:01:01:03"
    with pytest.raises(ValueError):
        timecode_of(-1, Fraction(24))


def test_timecode_follows_start_frame_and_rate(tmp_path):
    take = encode_take(moving_frames(5), 25, tmp_path / "t.mp4", width=64, height=48,
                       start_frame=90000)
    assert stream_info(take.path)["timecode"] == "01:00:00:00"


def test_fixed_gop_closed_keyframes(tmp_path):
    take = encode_take(moving_frames(60), 24, tmp_path / "gop.mp4", width=64, height=48)
    assert stream_info(take.path)["keyframes"] == [0, 24, 48]


def test_fast_and_default_h264_share_headers_and_join_by_stream_copy(tmp_path):
    first = encode_take(moving_frames(20), NTSC_FILM, tmp_path / "a.mp4", width=64, height=48,
                        codec_settings=H264)
    second = encode_take(moving_frames(13, colour=(30, 220, 60)), NTSC_FILM, tmp_path / "b.mp4",
                         width=64, height=48, codec_settings=H264_FAST)
    assert H264.join_group == H264_FAST.join_group
    a, b = stream_info(first.path), stream_info(second.path)
    assert a["extradata"] == b["extradata"]  # identical SPS/PPS: a stream copy can join them
    listing = tmp_path / "list.txt"
    listing.write_text(f"file '{first.path}'\nfile '{second.path}'\n")
    joined = tmp_path / "joined.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "concat",
                    "-safe", "0", "-i", str(listing), "-c", "copy", str(joined)], check=True)
    info = stream_info(joined)
    assert info["frames"] == 33
    decoded = decode_frames(joined)
    square = decoded[:, 10:22].reshape(33, -1, 3).max(axis=1)
    assert square[5, 0] > 150 and square[25, 1] > 150  # red square, then the green one


def test_scale_to_cover_and_centre_crop(tmp_path):
    frame = np.zeros((50, 100, 3), np.uint8)
    frame[:, :25] = (255, 0, 0)
    frame[:, 25:75] = (0, 255, 0)
    frame[:, 75:] = (0, 0, 255)
    take = encode_take([frame, frame], 24, tmp_path / "crop.mp4", width=64, height=64)
    decoded = decode_frames(take.path)
    assert decoded.shape == (2, 64, 64, 3)
    centre = decoded[0, 16:48, 16:48].reshape(-1, 3).mean(axis=0)
    assert centre[1] > 200 and centre[0] < 40 and centre[2] < 40
    # cover: the 2:1 frame scaled to 128x64, then cropped to its middle 64 columns (all green)
    assert decoded[0, :, 2].mean(axis=0)[1] > 180


def test_colours_survive_the_round_trip(tmp_path):
    colours = np.array([[200, 30, 40], [20, 180, 60], [30, 60, 220], [240, 240, 240],
                        [16, 16, 16], [128, 128, 128]], np.uint8)
    frame = np.zeros((64, 96, 3), np.uint8)
    for index, colour in enumerate(colours):
        frame[:, index * 16:(index + 1) * 16] = colour
    take = encode_take([frame] * 3, 24, tmp_path / "colours.mp4", width=96, height=64)
    decoded = decode_frames(take.path)
    patches = decoded[1, 24:40, 4::16][:, :6].mean(axis=0)
    assert np.abs(patches - colours).max() <= 5  # BT.709 in, BT.709 out


def test_last_frame_decode_and_thumbnail(tmp_path):
    frames = moving_frames(40)
    take = encode_take(frames, 24, tmp_path / "t.mp4", width=64, height=48)
    decoded = decode_frames(take.path)
    assert decoded.shape == (40, 48, 64, 3)
    last = np.asarray(last_frame(take.path))
    assert last.shape == (48, 64, 3)
    assert np.abs(last.astype(int) - frames[-1]).mean() < 6
    assert np.abs(last.astype(int) - frames[-5]).mean() > np.abs(
        last.astype(int) - frames[-1]).mean()
    assert probe_video(take.path).width == 64
    assert sum(1 for _ in iter_frames(take.path)) == 40
    jpeg = thumbnail(frames)
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (320, 240)


@pytest.mark.parametrize("settings, codec, pix_fmt", [
    (PRORES_422, "prores", "yuv422p10le"),
    (DNXHR_HQ, "dnxhd", "yuv422p"),
])
def test_mov_intermediate_codecs(tmp_path, settings, codec, pix_fmt):
    # DNxHR needs at least 256x120
    take = encode_take(moving_frames(6), 24, tmp_path / f"t{settings.suffix}", width=256,
                       height=144, codec_settings=settings)
    info = stream_info(take.path)
    assert (info["codec"], info["pix_fmt"], info["frames"]) == (codec, pix_fmt, 6)
    assert info["timecode"] == "00:00:41:17"
    with av.open(str(take.path)) as container:
        assert "mov" in container.format.name


def test_bad_input_is_refused_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        encode_take([], 24, tmp_path / "empty.mp4", width=64, height=48)
    with pytest.raises(ValueError, match="even size"):
        encode_take(moving_frames(2), 24, tmp_path / "odd.mp4", width=63, height=48)
    with pytest.raises(ValueError, match="share one size"):
        encode_take([moving_frames(1)[0], moving_frames(1, width=32)[0]], 24,
                    tmp_path / "mixed.mp4", width=64, height=48)
    with pytest.raises(ValueError, match="uint8"):
        encode_take(np.zeros((2, 48, 64, 3), np.float32), 24, tmp_path / "f.mp4", width=64,
                    height=48)
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_failure_is_an_encode_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PREVIZ_FFMPEG", "/bin/false")
    with pytest.raises(EncodeError, match="could not encode"):
        encode_take(moving_frames(3), 24, tmp_path / "x.mp4", width=64, height=48)
    assert list(tmp_path.iterdir()) == []


def test_h264_level_is_fixed_for_common_sizes():
    assert h264_level(1280, 720, Fraction(24)) == "4.1"
    assert h264_level(1920, 1080, NTSC_FILM) == "4.1"
    assert h264_level(1920, 1080, Fraction(60)) == "4.2"
    assert h264_level(3840, 2160, Fraction(24)) == "5.1"


def test_take_writer_streams_yuv_planes(tmp_path):
    from previz.media.encode import TakeWriter

    y = np.full((48, 64), 126, np.uint8)  # BT.709 limited range mid grey
    chroma = np.full((24, 32), 128, np.uint8)
    with TakeWriter(tmp_path / "yuv.mp4", 24, width=64, height=48,
                    source_format="yuv420p") as writer:
        for _ in range(5):
            writer.write(y.tobytes() + chroma.tobytes() + chroma.tobytes())
        with pytest.raises(ValueError, match="bytes, expected"):
            writer.write(b"short")
    assert writer.result.frames == 5
    decoded = decode_frames(writer.result.path)
    assert decoded.shape == (5, 48, 64, 3) and abs(int(decoded.mean()) - 128) <= 3
    assert stream_info(writer.result.path)["colorspace"] == 1


def test_rgb_and_yuv_sources_share_the_stream_header(tmp_path):
    """The draft generator writes YUV planes, assembly's transition pieces RGB: both must end
    in the same SPS (colour description included), or the cut cannot stream-copy the takes."""
    from previz.media.encode import TakeWriter

    rgb = encode_take(moving_frames(3), 24, tmp_path / "rgb.mp4", width=64, height=48)
    scaled = encode_take(moving_frames(3, width=32, height=24), 24, tmp_path / "scaled.mp4",
                         width=64, height=48)
    with TakeWriter(tmp_path / "yuv.mp4", 24, width=64, height=48,
                    source_format="yuv420p") as writer:
        for _ in range(3):
            writer.write(bytes(64 * 48 * 3 // 2))
    headers = {stream_info(path)["extradata"]
               for path in (rgb.path, scaled.path, writer.result.path)}
    assert len(headers) == 1


def test_take_writer_leaves_nothing_when_the_block_fails(tmp_path):
    from previz.media.encode import TakeWriter

    with pytest.raises(RuntimeError), TakeWriter(tmp_path / "x.mp4", 24, width=64,
                                                 height=48) as writer:
        writer.write(moving_frames(1)[0])
        raise RuntimeError("renderer failed")
    assert list(tmp_path.iterdir()) == []
