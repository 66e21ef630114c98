"""Prompt assembly for video models: the shot's prompt, its framing, its camera move, its style.

The prompt guides of Wan, LTX-Video, HunyuanVideo and CogVideoX all ask for the same shape: what
happens first (subject, action, place), then the shot and the camera, then the look, camera
moves phrased as plain sentences ("The camera slowly dollies in."). Phrases are kept in tables
so a family can override one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from previz.plan.types import ShotTask

__all__ = ["CAMERA_PHRASES", "FAMILY_CAMERA_PHRASES", "SHOT_SIZES", "ANGLES", "assemble_prompt",
           "camera_phrase", "speed_word"]

CAMERA_PHRASES: dict[str, str] = {
    "static": "The camera holds still on a locked-off shot.",
    "dolly_in": "The camera {speed}dollies in.",
    "dolly_out": "The camera {speed}dollies out.",
    "zoom_in": "The camera {speed}zooms in.",
    "zoom_out": "The camera {speed}zooms out.",
    "pan_left": "The camera {speed}pans left.",
    "pan_right": "The camera {speed}pans right.",
    "tilt_up": "The camera {speed}tilts up.",
    "tilt_down": "The camera {speed}tilts down.",
    "truck_left": "The camera {speed}trucks left, moving sideways.",
    "truck_right": "The camera {speed}trucks right, moving sideways.",
    "crane_up": "The camera {speed}cranes up, rising above the scene.",
    "crane_down": "The camera {speed}cranes down, descending toward the scene.",
    "orbit_left": "The camera {speed}orbits left around the subject.",
    "orbit_right": "The camera {speed}orbits right around the subject.",
    "handheld": "Handheld camera with a slight, natural shake.",
}

# LTX-Video's guide describes movement relative to the subject and prefers "remains still".
FAMILY_CAMERA_PHRASES: dict[str, dict[str, str]] = {
    "ltx-video": {
        "static": "The camera remains still.",
        "dolly_in": "The camera {speed}moves in toward the subject.",
        "dolly_out": "The camera {speed}pulls back from the subject.",
        "orbit_left": "The camera {speed}circles to the left around the subject.",
        "orbit_right": "The camera {speed}circles to the right around the subject.",
    },
}

SHOT_SIZES: dict[str, str] = {
    "extreme_wide": "Extreme wide shot", "wide": "Wide shot", "full": "Full shot",
    "medium_wide": "Medium wide shot", "medium": "Medium shot",
    "medium_close": "Medium close-up", "close": "Close-up", "extreme_close": "Extreme close-up",
    "insert": "Insert shot", "over_the_shoulder": "Over-the-shoulder shot",
    "two_shot": "Two shot", "pov": "Point-of-view shot",
}

ANGLES: dict[str, str] = {
    "eye_level": "eye-level angle", "low": "low angle", "high": "high angle",
    "overhead": "overhead angle", "dutch": "Dutch angle", "worms_eye": "worm's-eye view",
    "birds_eye": "bird's-eye view",
}


def speed_word(speed: float) -> str:
    if speed <= 0.5:
        return "very slowly "
    if speed < 0.9:
        return "slowly "
    if speed <= 1.25:
        return "smoothly "
    if speed <= 2.0:
        return "quickly "
    return "rapidly "


def camera_phrase(move: str, speed: float, family: str = "") -> str:
    template = FAMILY_CAMERA_PHRASES.get(family, {}).get(move) or CAMERA_PHRASES.get(move)
    if template is None:
        return f"Camera move: {move.replace('_', ' ')}."
    return template.format(speed=speed_word(speed))


def _sentence(text: str | None) -> str:
    text = " ".join((text or "").split()).strip()
    if not text:
        return ""
    return text if text[-1] in ".!?" else text + "."


def _framing(task: ShotTask) -> str:
    camera = task.camera
    parts = []
    if camera.size:
        parts.append(SHOT_SIZES.get(camera.size, camera.size.replace("_", " ")))
    if camera.angle:
        parts.append(ANGLES.get(camera.angle, camera.angle.replace("_", " ")))
    if camera.lens:
        parts.append(f"{camera.lens} lens")
    if not parts:
        return ""
    text = ", ".join(parts)
    return _sentence(text[0].upper() + text[1:])


def _heard(task: ShotTask) -> str:
    """What a model that makes sound is to make heard, as the LTX-2 prompt guide asks: spoken
    lines in quotes after who says them, then the sounds of the scene."""
    parts = [f'{character.capitalize()} says: "{line}"' for character, line in task.dialogue]
    if task.sound:
        parts.append(f"Audio: {_sentence(task.sound)}")
    return " ".join(parts)


def assemble_prompt(task: ShotTask, family: str = "") -> str:
    """The text a video model reads: action, framing, camera move, what is heard (only a model
    that makes sound is given the shot's dialogue and sound), style — in that order."""
    parts = [_sentence(task.prompt), _framing(task),
             camera_phrase(task.camera.move, task.camera.speed, family), _heard(task),
             _sentence(task.style)]
    return " ".join(p for p in parts if p)
