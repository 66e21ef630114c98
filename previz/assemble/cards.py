"""Pictures the assembly draws: placeholder cards, the slate, burn-ins, the contact sheet.

Text is set in the DejaVu fonts shipped in `previz/assets/fonts` (licence beside them), through
Pillow's FreeType, so a review copy looks the same on every machine.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "FONT_DIR",
    "font",
    "placeholder_card",
    "slate_card",
    "BurnIn",
    "ShotLabel",
    "contact_sheet",
    "jpeg_bytes",
]

FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"
_FONT_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}

_BACKDROP = (0, 0, 0, 150)
_DRAFT = (230, 170, 20, 230)
_FAILED = (200, 40, 40, 230)


@lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    path = FONT_DIR / _FONT_FILES[bold]
    if not path.is_file():
        raise FileNotFoundError(f"the burn-in font {path} is missing — reinstall previz")
    return ImageFont.truetype(str(path), max(6, int(size)))


def _wrap(text: str, face: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            while face.getlength(word) > width and len(word) > 1:  # break a very long word
                cut = len(word) - 1
                while cut > 1 and face.getlength(word[:cut]) > width:
                    cut -= 1
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            candidate = f"{line} {word}" if line else word
            if face.getlength(candidate) <= width:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip() + " …"
    return lines


def _centred_lines(draw: ImageDraw.ImageDraw, lines: Sequence[tuple[str, ImageFont.FreeTypeFont,
                                                                    tuple[int, int, int]]],
                   width: int, height: int, gap: float = 0.35) -> None:
    heights = [face.size for _, face, _ in lines]
    total = sum(heights) + gap * sum(heights[1:])
    y = (height - total) / 2
    for (text, face, colour), line_height in zip(lines, heights, strict=True):
        x = (width - face.getlength(text)) / 2
        draw.text((x, y), text, font=face, fill=colour)
        y += line_height * (1 + gap)


def placeholder_card(width: int, height: int, shot_id: str, reason: str,
                     prompt: str = "") -> np.ndarray:
    """The card standing in for a shot with no media: "SH0040 — FAILED: <reason>"."""
    image = Image.new("RGB", (width, height), (46, 20, 22))
    draw = ImageDraw.Draw(image)
    stripe = max(2, height // 60)
    draw.rectangle((0, 0, width, stripe), fill=(200, 40, 40))
    draw.rectangle((0, height - stripe, width, height), fill=(200, 40, 40))
    title = font(max(10, height // 14), bold=True)
    body = font(max(8, height // 28))
    small = font(max(7, height // 36))
    margin = width * 0.08
    lines = [(line, title, (255, 255, 255)) for line in
             _wrap(f"{shot_id} — {reason}", title, width - 2 * margin, 3)]
    if prompt:
        lines += [(line, small, (200, 190, 190)) for line in
                  _wrap(prompt, small, width - 2 * margin, 3)]
    lines.append(("PLACEHOLDER — no take for this shot; timing holds", body, (230, 120, 120)))
    _centred_lines(draw, lines, width, height)
    return np.asarray(image)


def slate_card(width: int, height: int, rows: Sequence[tuple[str, str]], title: str) -> np.ndarray:
    """The slate: a title, then label/value rows (project, sequence, version, date, ...)."""
    image = Image.new("RGB", (width, height), (18, 18, 22))
    draw = ImageDraw.Draw(image)
    heading = font(max(10, height // 12), bold=True)
    label_face = font(max(8, height // 24), bold=True)
    value_face = font(max(8, height // 24))
    y = height * 0.12
    draw.text(((width - heading.getlength(title)) / 2, y), title, font=heading,
              fill=(255, 255, 255))
    y += heading.size * 1.6
    column = width * 0.42
    for label, value in rows:
        draw.text((column - label_face.getlength(label) - width * 0.02, y), label,
                  font=label_face, fill=(150, 160, 180))
        draw.text((column + width * 0.0, y), _wrap(value, value_face, width * 0.5, 1)[0],
                  font=value_face, fill=(240, 240, 240))
        y += value_face.size * 1.45
    return np.asarray(image)


@dataclass(frozen=True)
class ShotLabel:
    """The per-shot text of the burn-ins."""

    top_left: str  # "SH0010  t2"
    bottom_left: str  # "wan2.1-t2v-1.3b  seed 1234"
    flag: str | None = None  # "DRAFT", "DRAFT 10/40 STEPS" or "PLACEHOLDER — FAILED"
    failed: bool = False


class BurnIn:
    """Draws the review burn-ins onto RGB frames: shot and take top-left, record timecode
    top-right, frame counter bottom-right, model and seed small bottom-left, and a flag for
    draft and placeholder shots."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.margin = max(2, height // 60)
        self.big = font(max(9, height // 28), bold=True)
        self.small = font(max(7, height // 40))
        self._static: dict[tuple, np.ndarray] = {}

    def _patch(self, text: str, face: ImageFont.FreeTypeFont,
               fill: tuple[int, int, int, int] = _BACKDROP) -> np.ndarray:
        """RGBA patch: text on a translucent box."""
        pad = max(2, face.size // 4)
        left, top, right, bottom = face.getbbox(text)
        width = int(right - min(0, left)) + 2 * pad
        height = int(face.size * 1.25) + 2 * pad
        image = Image.new("RGBA", (max(1, width), max(1, height)), fill)
        ImageDraw.Draw(image).text((pad, pad), text, font=face, fill=(255, 255, 255, 255))
        return np.asarray(image)

    def _static_patch(self, text: str, face: ImageFont.FreeTypeFont,
                      fill: tuple[int, int, int, int] = _BACKDROP) -> np.ndarray:
        key = (text, face.size, fill)
        if key not in self._static:
            self._static[key] = self._patch(text, face, fill)
        return self._static[key]

    def _blend(self, frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> int:
        """Lay an RGBA patch at (x, y), clipped to the frame; returns the patch width."""
        height, width = patch.shape[:2]
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + width), min(self.height, y + height)
        if x1 <= x0 or y1 <= y0:
            return width
        region = patch[y0 - y:y1 - y, x0 - x:x1 - x]
        alpha = region[..., 3:4].astype(np.uint16)
        target = frame[y0:y1, x0:x1]
        target[...] = ((region[..., :3].astype(np.uint16) * alpha
                        + target.astype(np.uint16) * (255 - alpha) + 127) // 255).astype(np.uint8)
        return width

    def draw(self, frame: np.ndarray, label: ShotLabel, timecode: str, counter: str) -> None:
        """Draw onto `frame` (H, W, 3) uint8, in place."""
        m = self.margin
        x = m + self._blend(frame, self._static_patch(label.top_left, self.big), m, m)
        if label.flag:
            fill = _FAILED if label.failed else _DRAFT
            self._blend(frame, self._static_patch(label.flag, self.big, fill), x + m, m)
        patch = self._patch(timecode, self.big)
        self._blend(frame, patch, self.width - m - patch.shape[1], m)
        patch = self._patch(counter, self.big)
        self._blend(frame, patch, self.width - m - patch.shape[1],
                    self.height - m - patch.shape[0])
        patch = self._static_patch(label.bottom_left, self.small)
        self._blend(frame, patch, m, self.height - m - patch.shape[0])


def contact_sheet(frames: Sequence[np.ndarray], labels: Sequence[tuple[str, str, bool]],
                  columns: int, cell_width: int = 320) -> Image.Image:
    """One labelled frame per shot on a grid. A label is (title, detail, flagged)."""
    columns = max(1, min(columns, len(frames)))
    rows = -(-len(frames) // columns)
    first = frames[0]
    cell_height = max(1, round(cell_width * first.shape[0] / first.shape[1]))
    pad = max(4, cell_width // 32)
    title_face = font(max(9, cell_width // 20), bold=True)
    detail_face = font(max(8, cell_width // 26))
    text_height = int(title_face.size * 1.3 + detail_face.size * 1.3)
    sheet = Image.new("RGB", (columns * (cell_width + pad) + pad,
                              rows * (cell_height + text_height + 2 * pad) + pad), (24, 24, 28))
    draw = ImageDraw.Draw(sheet)
    for index, (frame, (title, detail, flagged)) in enumerate(zip(frames, labels, strict=True)):
        column, row = index % columns, index // columns
        x = pad + column * (cell_width + pad)
        y = pad + row * (cell_height + text_height + 2 * pad)
        thumb = Image.fromarray(frame).resize((cell_width, cell_height), Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x, y))
        colour = (255, 120, 110) if flagged else (240, 240, 240)
        draw.text((x, y + cell_height + pad // 2), title, font=title_face, fill=colour)
        draw.text((x, y + cell_height + pad // 2 + title_face.size * 1.3),
                  _wrap(detail, detail_face, cell_width, 1)[0], font=detail_face,
                  fill=(170, 170, 180))
    return sheet


def jpeg_bytes(frame: np.ndarray | Image.Image, width: int | None = None,
               quality: int = 85) -> bytes:
    image = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
    if width and image.width != width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def scaled(frame: np.ndarray, width: int) -> np.ndarray:
    """The frame scaled to `width` (aspect kept), as the contact sheet and the page show it."""
    if frame.shape[1] == width:
        return frame.copy()
    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    image = Image.fromarray(frame).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(image.convert("RGB")).copy()


def png_file(frame: np.ndarray, path: Path) -> Path:
    Image.fromarray(frame).save(path, "PNG")
    return path


def read_png(path: Path) -> np.ndarray:
    """An RGB frame from a PNG; OSError when the file is not a whole image."""
    with Image.open(path) as image:
        image.load()
        return np.asarray(image.convert("RGB")).copy()
