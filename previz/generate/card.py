"""The draft's title card: what a shot is, legible enough to cut with.

The card (a translucent panel, drawn once per shot) names the shot, its notes, the prompt as
written, the characters and locations, the camera notes, and shows the character reference
images as small insets. The background "set" behind it is a dark gradient in a colour of the
shot with a perspective floor grid, so camera moves read as moves.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from previz.generate.fonts import font, wrap_text
from previz.generate.moves import MOVES, describe_move

if TYPE_CHECKING:
    from previz.plan.types import ShotTask

__all__ = ["CARD_WIDTH", "CARD_HEIGHT", "CardLayer", "card_layer", "set_background",
           "camera_notes"]

CARD_WIDTH, CARD_HEIGHT = 0.72, 0.76  # of the frame
_TEXT = (242, 242, 242, 255)
_GREY = (168, 176, 186, 255)
_ACCENT = (255, 192, 86, 255)
_CAMERA = (128, 206, 255, 255)
_BRACED = re.compile(r"\{([A-Za-z0-9_]+)\}")


@dataclass
class CardLayer:
    image: Image.Image  # RGBA, card size x scale
    warnings: list[str] = field(default_factory=list)
    text_boxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)


def camera_notes(task: ShotTask) -> str:
    camera = task.camera
    parts = [describe_move(camera.move).upper()]
    if camera.size:
        parts.append(camera.size.replace("_", " "))
    if camera.angle:
        parts.append(camera.angle.replace("_", " ") + " angle")
    if camera.lens:
        parts.append(camera.lens)
    if camera.move != "static" and abs(camera.speed - 1.0) > 1e-9:
        parts.append(f"speed {camera.speed:g}x")
    return "  ·  ".join(parts)


def _shot_hue(task: ShotTask) -> float:
    digest = hashlib.sha256(task.shot_id.encode()).digest()
    return digest[0] / 255.0


def set_background(task: ShotTask, extent: tuple[float, float, float, float], width: int,
                   height: int, scale: int) -> Image.Image:
    """The backdrop over `extent` (x0, y0, x1, y1 in output pixels around the home centre)."""
    x0, y0, x1, y1 = extent
    world_w, world_h = math.ceil((x1 - x0) * scale), math.ceil((y1 - y0) * scale)
    hue = _shot_hue(task)
    top = np.array(colorsys.hsv_to_rgb(hue, 0.35, 0.34)) * 255
    bottom = np.array(colorsys.hsv_to_rgb(hue, 0.45, 0.10)) * 255
    # the gradient runs over the home frame's height; beyond it the colours hold
    ys = (np.arange(world_h) / scale + y0 + height / 2) / height
    mix = np.clip(ys, 0, 1)[:, None]
    column = (top * (1 - mix) + bottom * mix).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(
        np.broadcast_to(column[:, None, :], (world_h, world_w, 3))), "RGB")
    draw = ImageDraw.Draw(image)
    line = tuple(int(c) for c in np.clip(top * 0.6 + 40, 0, 255))
    thick = max(1, round(1.5 * scale * height / 720))

    def px(x: float, y: float) -> tuple[float, float]:
        return ((x - x0) * scale, (y - y0) * scale)

    horizon = 0.08 * height  # below the home centre
    draw.line([px(x0, horizon), px(x1, horizon)], fill=line, width=thick)
    # floor: rays from a vanishing point, and rungs closer together towards the horizon
    vanish = (0.0, horizon)
    floor_bottom = max(y1, height / 2)
    spacing = 0.16 * width
    reach = 6 * max(abs(x0), abs(x1))
    for k in range(-int(reach // spacing), int(reach // spacing) + 1):
        draw.line([px(*vanish), px(k * spacing, floor_bottom)], fill=line, width=thick)
    depth = 1.0
    while horizon + 0.42 * height / depth < y1:  # start from the nearest rung out of sight
        depth /= 1.45
    while True:
        y = horizon + 0.42 * height / depth
        if y - horizon < 0.012 * height:  # rungs closer than this shimmer in motion
            break
        draw.line([px(x0, y), px(x1, y)], fill=line, width=thick)
        depth *= 1.45
    # wall: vertical battens above the horizon, a common reference for pans and tilts
    wall = tuple(int(c) for c in np.clip(top * 0.8 + 22, 0, 255))
    for k in range(math.floor(x0 / spacing) - 1, math.ceil(x1 / spacing) + 2):
        x = (k + 0.5 + 0.3 * math.sin(k * 2.39)) * spacing  # irregular, so moves read clearly
        draw.line([px(x, y0), px(x, horizon)], fill=wall, width=thick)
    return image


def card_layer(task: ShotTask, references: list[tuple[str, Image.Image]], width: int,
               height: int, scale: int) -> CardLayer:
    """The translucent card with the shot's text, `scale` times the output size."""
    card_w, card_h = round(width * CARD_WIDTH), round(height * CARD_HEIGHT)
    unit = height / 100 * scale  # 1% of the frame height, in card pixels
    image = Image.new("RGBA", (card_w * scale, card_h * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    radius = round(2.2 * unit)
    draw.rounded_rectangle([0, 0, image.width - 1, image.height - 1], radius=radius,
                           fill=(8, 10, 14, 196), outline=(255, 255, 255, 70),
                           width=max(1, round(0.25 * unit)))
    layer = CardLayer(image=image)
    pad = 3.2 * unit
    left, right = pad, image.width - pad
    y = pad * 0.8

    # 1. header: shot code, take/segment and length
    code_face = font(round(7.2 * unit), bold=True)
    draw.text((left, y), task.shot_id, font=code_face, fill=_TEXT)
    layer.text_boxes["code"] = _box(draw.textbbox((left, y), task.shot_id, font=code_face))
    info_face = font(round(2.9 * unit))
    seconds = task.num_frames / task.fps
    take = f"TAKE {task.take}" + (f"  ·  SEGMENT {task.segment + 1}/{task.segments}"
                                  if task.segments > 1 else "")
    length = f"{seconds:.2f} s  ·  {task.num_frames} f @ {task.fps:g} fps"
    draw.text((right, y + 0.6 * unit), take, font=info_face, fill=_GREY, anchor="ra")
    draw.text((right, y + 4.4 * unit), length, font=info_face, fill=_GREY, anchor="ra")
    y += 9.2 * unit

    # 2. the shot's notes
    if task.title:
        title_face = font(round(3.6 * unit))
        lines = wrap_text(task.title, title_face, right - left)
        if len(lines) > 2:
            lines = lines[:2]
            lines[-1] = _ellipsis(lines[-1], title_face, right - left)
            layer.warnings.append("draft card: shot notes cut to two lines")
        for line in lines:
            draw.text((left, y), line, font=title_face, fill=_ACCENT)
            y += 4.6 * unit
    y += 1.2 * unit
    draw.line([(left, y), (right, y)], fill=(255, 255, 255, 60), width=max(1, round(0.2 * unit)))
    y += 2.4 * unit

    # 3. bottom rows: names and camera, laid out from the bottom up
    bottom = image.height - pad * 0.8
    camera_face = font(round(3.5 * unit), bold=True)
    camera_y = bottom - 4.2 * unit
    icon = 4.0 * unit
    _move_icon(draw, task.camera.move, (left, camera_y + 0.1 * unit, left + icon,
                                        camera_y + 0.1 * unit + icon), _CAMERA,
               max(1, round(0.45 * unit)))
    draw.text((left + icon + 1.6 * unit, camera_y), camera_notes(task), font=camera_face,
              fill=_CAMERA)
    layer.text_boxes["camera"] = (int(left), int(camera_y), int(right), int(bottom))
    names_bottom = camera_y - 1.6 * unit
    rows = []
    if task.characters:
        rows.append(("CHARACTERS", ", ".join(task.characters)))
    if task.locations:
        rows.append(("LOCATIONS", ", ".join(task.locations)))
    label_face, value_face = font(round(2.5 * unit), bold=True), font(round(3.2 * unit))
    row_h = 4.4 * unit
    names_top = names_bottom - row_h * len(rows)

    # 4. reference insets in a right-hand column
    text_right = right
    if references:
        column_w = 0.24 * image.width
        text_right = right - column_w - 2.0 * unit
        _insets(draw, image, references, (right - column_w, y, right, names_bottom), unit, layer)

    for index, (label, value) in enumerate(rows):
        row_y = names_top + index * row_h
        draw.text((left, row_y + 0.6 * unit), label, font=label_face, fill=_GREY)
        label_w = label_face.getlength("CHARACTERS ") + 1.0 * unit
        shown = _ellipsis(value, value_face, text_right - left - label_w)
        draw.text((left + label_w, row_y), shown, font=value_face, fill=_TEXT)
    if rows:
        layer.text_boxes["names"] = (int(left), int(names_top), int(text_right), int(names_bottom))

    # 5. the prompt as written (names without their braces), as large as fits
    area = (left, y, text_right, names_top - 1.6 * unit)
    _prompt(draw, _BRACED.sub(r"\1", task.shot_prompt), area, unit, layer)
    return layer


def _prompt(draw: ImageDraw.ImageDraw, text: str, area, unit: float, layer: CardLayer) -> None:
    left, top, right, bottom = area
    text = " ".join(text.split())
    if not text or bottom - top < 3 * unit:
        return
    size = 6.0
    while True:
        face = font(round(size * unit))
        line_h = 1.28 * size * unit
        lines = wrap_text(text, face, right - left)
        if len(lines) * line_h <= bottom - top or size <= 2.6:
            break
        size -= 0.2
    fitting = max(1, int((bottom - top) // line_h))
    if len(lines) > fitting:
        lines = lines[:fitting]
        lines[-1] = _ellipsis(lines[-1] + " …", face, right - left)
        layer.warnings.append(f"draft card: prompt too long to show whole; {fitting} lines "
                              "shown")
    for index, line in enumerate(lines):
        draw.text((left, top + index * line_h), line, font=face, fill=_TEXT)
    layer.text_boxes["prompt"] = (int(left), int(top), int(right),
                                  int(top + len(lines) * line_h))


def _insets(draw, image: Image.Image, references: list[tuple[str, Image.Image]], area,
            unit: float, layer: CardLayer) -> None:
    left, top, right, bottom = area
    column_w = right - left
    label_face = font(round(2.4 * unit), bold=True)
    box_h = column_w * 0.62
    step = box_h + 4.2 * unit
    fitting = max(1, int((bottom - top + 1.0 * unit) // step))
    shown = references[:fitting]
    y = top
    for name, picture in shown:
        thumb = picture.convert("RGB").copy()
        thumb.thumbnail((int(column_w), int(box_h)), Image.Resampling.LANCZOS)
        x = left + (column_w - thumb.width) / 2
        draw.rectangle([left, y, right, y + box_h], fill=(0, 0, 0, 140))
        image.paste(thumb, (int(x), int(y + (box_h - thumb.height) / 2)))
        draw.rectangle([left, y, right, y + box_h], outline=(255, 255, 255, 90),
                       width=max(1, round(0.2 * unit)))
        draw.text((left + column_w / 2, y + box_h + 0.6 * unit),
                  _ellipsis(name, label_face, column_w), font=label_face, fill=_TEXT,
                  anchor="ma")
        y += step
    if len(references) > len(shown):
        layer.warnings.append(f"draft card: {len(references) - len(shown)} reference images "
                              "not shown (no room)")
    layer.text_boxes["references"] = (int(left), int(top), int(right), int(y))


def _ellipsis(text: str, face, width: float) -> str:
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _box(box) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in box)  # type: ignore[return-value]


def _move_icon(draw: ImageDraw.ImageDraw, move: str, box, colour, width: int) -> None:
    """A small pictogram of the move: arrows for translations, corners for zooms."""
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    kind, direction = MOVES.get(move, ("static", 0))

    def arrow(ax, ay, bx, by):
        draw.line([(ax, ay), (bx, by)], fill=colour, width=width)
        angle = math.atan2(by - ay, bx - ax)
        for side in (-1, 1):
            tip = angle + math.pi - side * 0.5
            draw.line([(bx, by), (bx + 0.45 * r * math.cos(tip), by + 0.45 * r * math.sin(tip))],
                      fill=colour, width=width)

    if kind == "x":
        arrow(cx - direction * r, cy, cx + direction * r, cy)
    elif kind == "y":
        arrow(cx, cy - direction * r, cx, cy + direction * r)
    elif kind == "zoom":
        inner, outer = 0.25 * r, 0.95 * r
        for sx, sy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
            a = (cx + sx * inner, cy + sy * inner)
            b = (cx + sx * outer, cy + sy * outer)
            arrow(*(a + b) if direction > 0 else (b + a))
    elif kind == "orbit":
        draw.arc([x0, y0 + 0.3 * r, x1, y1 - 0.3 * r], 200, 340 if direction > 0 else 200,
                 fill=colour, width=width)
        draw.arc([x0, y0 + 0.3 * r, x1, y1 - 0.3 * r], 20, 160, fill=colour, width=width)
        tip_x = x1 if direction > 0 else x0
        arrow(cx, y1 - 0.3 * r, tip_x, cy)
    elif kind == "handheld":
        points = [(x0 + i * (x1 - x0) / 12, cy + 0.5 * r * math.sin(i * math.pi / 3))
                  for i in range(13)]
        draw.line(points, fill=colour, width=width, joint="curve")
    else:
        draw.rectangle([cx - 0.6 * r, cy - 0.45 * r, cx + 0.6 * r, cy + 0.45 * r],
                       outline=colour, width=width)
