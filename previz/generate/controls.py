"""Layouts and masks as a model takes them.

A layout (a playblast, a greybox render, a phone recording, or the shot's own animatic) is
retimed to the task's frames by time: generated frame i (at the model's rate, counted from the
take's first generated frame) shows the layout frame on screen in the middle of its interval,
at (i + 1/2) / rate seconds — frame floor((i + 1/2) x layout rate / rate) of a constant-rate
file. ffmpeg's `fps` filter picks it from the file's own timestamps, so a 23.976 fps playblast
drives a 16 fps model without drift. It is scaled to cover the task's size and
cropped at the centre (as conditioning images are fitted). Past the layout's end (a model's
frame count can run a few frames past the shot's) its last frame holds.

What of it steers the model: `edges` (the outlines of its staging and camera, white on black:
Sobel gradients of its luminance, thresholded), `depth` (a transformers depth-estimation model's
relative depth, near bright, scaled over the whole clip so it does not flicker), `pose` (the
performer's skeleton: a transformers ViTPose model's 17 COCO keypoints, the whole frame taken as
the one performer's box, drawn as OpenPose draws them — coloured limbs on black), `gray` (its
grey levels), or `video` (its own pictures, for video-to-video). A mask is white where the model
generates and black where the source is kept. All but depth and pose need numpy and the ffmpeg
binary only.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from previz.generate.errors import GeneratorError

__all__ = ["CONTROL_VERSION", "video_frames", "control_frames", "mask_frames", "control_key"]

# Bump when what an extractor makes changes: cached control videos are keyed by it.
CONTROL_VERSION = "1"
EDGE_THRESHOLD = 0.12  # of the strongest gradient a frame can have


def video_frames(path: str | Path, fps: float, width: int, height: int, first: int,
                 count: int) -> np.ndarray:
    """Frames first .. first + count - 1 of the video at `fps`, width x height, (T, H, W, 3)."""
    from previz.media.encode import ffmpeg_exe, pipe_rgb_frames

    rate = Fraction(fps).limit_denominator(1001)
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path),
            "-map", "0:v:0", "-vf",
            f"fps={rate.numerator}/{rate.denominator},"
            f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic,"
            f"crop={width}:{height},setsar=1",
            "-frames:v", str(first + count), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    frames = list(pipe_rgb_frames(args, width, height, Path(path).name, error=GeneratorError))
    if not frames:
        raise GeneratorError(f"{Path(path).name}: no frames could be decoded")
    frames = frames[first:first + count] or frames[-1:]
    frames += [frames[-1]] * (count - len(frames))
    return np.stack(frames)


def control_frames(frames: np.ndarray, control: str, extractor: str | None = None
                   ) -> np.ndarray:
    """What of a layout steers the model, as (T, H, W, 3) uint8. `extractor`: the weights of
    the depth model, for depth."""
    if control == "video":
        return frames
    if control in ("depth", "pose", "face", "performer", "plate") and not extractor:
        kind = "depth" if control == "depth" else "pose"
        raise GeneratorError(f"control {control} needs a {kind} model: weights: "
                             f"{{{kind}: DIR}}")
    if control == "depth":
        return np.repeat(_depth(frames, extractor)[..., None], 3, axis=-1)
    if control == "pose":
        return _pose(frames, extractor)
    if control in ("face", "performer", "plate"):
        return _performance(frames, extractor, control)
    luminance = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if control == "gray":
        grey = np.clip(luminance, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if control == "edges":
        return np.repeat(_edges(luminance)[..., None], 3, axis=-1)
    raise GeneratorError(f"no control {control!r}: edges, gray or video")


def _edges(luminance: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude per frame, thresholded: 255 on an edge, 0 elsewhere."""
    padded = np.pad(luminance, ((0, 0), (1, 1), (1, 1)), mode="edge")
    window = {(dy, dx): padded[:, 1 + dy:padded.shape[1] - 1 + dy, 1 + dx:padded.shape[2] - 1 + dx]
              for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    gx = (window[-1, 1] + 2 * window[0, 1] + window[1, 1]
          - window[-1, -1] - 2 * window[0, -1] - window[1, -1])
    gy = (window[1, -1] + 2 * window[1, 0] + window[1, 1]
          - window[-1, -1] - 2 * window[-1, 0] - window[-1, 1])
    magnitude = np.hypot(gx, gy)
    strongest = 4 * 255 * np.sqrt(2)  # a black-to-white step under the kernel
    return np.where(magnitude > EDGE_THRESHOLD * strongest, 255, 0).astype(np.uint8)


DEPTH_BATCH = 8  # frames through the depth model at once


def _depth(frames: np.ndarray, weights: str) -> np.ndarray:
    import torch
    from PIL import Image

    model, processor = _model(weights, "depth")
    estimates = []
    for start in range(0, len(frames), DEPTH_BATCH):
        batch = [Image.fromarray(frame) for frame in frames[start:start + DEPTH_BATCH]]
        inputs = processor(images=batch, return_tensors="pt")
        with torch.inference_mode():
            depth = model(**inputs.to(model.device)).predicted_depth
        depth = torch.nn.functional.interpolate(depth[:, None].float(), size=frames.shape[1:3],
                                                mode="bicubic", align_corners=False)[:, 0]
        estimates.append(depth.cpu().numpy())
    depth = np.concatenate(estimates)
    low, high = float(depth.min()), float(depth.max())
    scaled = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
    return np.clip(scaled * 255 + 0.5, 0, 255).astype(np.uint8)


# COCO's 17 keypoints joined as OpenPose draws a body: (from, to) and the limb's colour.
_LIMBS = [((5, 7), (255, 85, 0)), ((7, 9), (255, 170, 0)), ((6, 8), (85, 255, 0)),
          ((8, 10), (0, 255, 0)), ((5, 6), (255, 0, 0)), ((5, 11), (0, 255, 85)),
          ((6, 12), (0, 255, 170)), ((11, 13), (0, 255, 255)), ((13, 15), (0, 170, 255)),
          ((12, 14), (0, 85, 255)), ((14, 16), (0, 0, 255)), ((11, 12), (85, 0, 255)),
          ((0, 1), (170, 0, 255)), ((0, 2), (255, 0, 255)), ((1, 3), (255, 0, 170)),
          ((2, 4), (255, 0, 85))]
KEYPOINT_SCORE = 0.3  # below it a keypoint is not seen, and its limbs are not drawn


def _keypoints(frames: np.ndarray, weights: str) -> tuple[np.ndarray, np.ndarray]:
    """The performer's 17 COCO keypoints in every frame, (T, 17, 2) in pixels, and their scores
    (T, 17): the whole frame taken as the one performer's box. Kept for the last clip, which
    a performance asks for four times (its pose, face, plate and mask)."""
    import torch
    from PIL import Image

    key = (weights, hashlib.sha1(frames.tobytes()).hexdigest(), frames.shape)
    if _LAST_KEYPOINTS.get("key") == key:
        return _LAST_KEYPOINTS["value"]
    model, processor = _model(weights, "pose")
    height, width = frames.shape[1:3]
    points, scores = [], []
    for start in range(0, len(frames), DEPTH_BATCH):
        batch = [Image.fromarray(frame) for frame in frames[start:start + DEPTH_BATCH]]
        boxes = [[[0, 0, width, height]] for _ in batch]
        inputs = processor(images=batch, boxes=boxes, return_tensors="pt")
        with torch.inference_mode():
            outputs = model(**inputs.to(model.device))
        for people in processor.post_process_pose_estimation(outputs, boxes=boxes):
            points.append(people[0]["keypoints"].cpu().numpy())
            scores.append(people[0]["scores"].cpu().numpy())
    value = (np.stack(points), np.stack(scores))
    _LAST_KEYPOINTS.update(key=key, value=value)
    return value


_LAST_KEYPOINTS: dict[str, object] = {}


def _pose(frames: np.ndarray, weights: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    points, scores = _keypoints(frames, weights)
    height, width = frames.shape[1:3]
    drawn = np.zeros_like(frames)
    line = max(2, round(min(width, height) / 90))
    for index in range(len(frames)):
        canvas = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(canvas)
        for (a, b), colour in _LIMBS:
            if min(scores[index, a], scores[index, b]) >= KEYPOINT_SCORE:
                draw.line([tuple(points[index, a]), tuple(points[index, b])], fill=colour,
                          width=line)
        drawn[index] = np.asarray(canvas)
    return drawn


def _box(points: np.ndarray, scores: np.ndarray, joints, grow: float, size: tuple[int, int],
         square: bool) -> tuple[int, int, int, int] | None:
    """The box around the seen `joints`, grown by `grow` of its size (square if asked), inside
    the frame; None when none of them is seen."""
    seen = [points[j] for j in joints if scores[j] >= KEYPOINT_SCORE]
    if not seen:
        return None
    (x0, y0), (x1, y1) = np.min(seen, axis=0), np.max(seen, axis=0)
    w, h = max(x1 - x0, 4.0), max(y1 - y0, 4.0)
    if square:
        w = h = max(w, h)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = w * (1 + grow), h * (1 + grow)
    width, height = size
    return (max(0, int(cx - w / 2)), max(0, int(cy - h / 2)),
            min(width, int(cx + w / 2) + 1), min(height, int(cy + h / 2) + 1))


_HEAD = (0, 1, 2, 3, 4)  # nose, eyes, ears


def _performance(frames: np.ndarray, weights: str, part: str) -> np.ndarray:
    """What Wan-Animate's preprocessing makes of a performance video, from its keypoints: the
    performer's face, cropped square around the head (the last one seen holds when the head is
    not seen; the whole frame before any is); the performer's region, the box around every seen
    joint (white); or the plate without the performer (that box black)."""
    from PIL import Image

    points, scores = _keypoints(frames, weights)
    height, width = frames.shape[1:3]
    out = np.zeros_like(frames)
    last = (0, 0, width, height)
    for index, frame in enumerate(frames):
        if part == "face":
            box = _box(points[index], scores[index], _HEAD, 1.0, (width, height), True) or last
            last = box
            crop = Image.fromarray(frame).crop(box).resize((width, height), Image.BICUBIC)
            out[index] = np.asarray(crop)
            continue
        box = _box(points[index], scores[index], range(17), 0.15, (width, height), False)
        x0, y0, x1, y1 = box or (0, 0, 0, 0)
        if part == "performer":
            out[index, y0:y1, x0:x1] = 255
        else:  # the plate
            out[index] = frame
            out[index, y0:y1, x0:x1] = 0
    return out


_MODELS: dict[tuple[str, str], tuple] = {}


def _model(weights: str, kind: str):
    """A depth or pose model and its processor, loaded once per process (a worker keeps it)."""
    if (weights, kind) not in _MODELS:
        import torch
        from transformers import (
            AutoImageProcessor,
            AutoModelForDepthEstimation,
            VitPoseForPoseEstimation,
        )

        loader = AutoModelForDepthEstimation if kind == "depth" else VitPoseForPoseEstimation
        try:
            processor = AutoImageProcessor.from_pretrained(weights)
            model = loader.from_pretrained(weights).eval()
        except (OSError, ValueError) as error:
            raise GeneratorError(
                f"the {kind} model at {weights} could not be loaded ({error}) — point weights: "
                f"{{{kind}: ...}} at a transformers folder such as "
                f"{'Depth-Anything-V2-Small-hf' if kind == 'depth' else 'vitpose-base-simple'}"
            ) from None
        if torch.cuda.is_available():
            model = model.to("cuda")
        _MODELS[weights, kind] = (model, processor)
    return _MODELS[weights, kind]


def mask_frames(frames: np.ndarray) -> np.ndarray:
    """A mask's frames as pure white (generated) and black (kept), (T, H, W, 3) uint8."""
    luminance = frames.astype(np.float32).mean(axis=-1)
    binary = np.where(luminance >= 128, 255, 0).astype(np.uint8)
    return np.repeat(binary[..., None], 3, axis=-1)


def control_key(source: str, control: str, fps: float, width: int, height: int, first: int,
                count: int) -> str:
    """The content key of a control video: what it is made from (a file's sha256 or a take's
    key), how, and which frames."""
    payload = {"kind": "control", "version": CONTROL_VERSION, "source": source,
               "control": control, "fps": str(Fraction(fps).limit_denominator(1001)),
               "size": [width, height], "first": first, "count": count}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
