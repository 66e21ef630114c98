"""The TTF fonts shipped with previz (DejaVu Sans; licence beside the files)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

__all__ = ["FONT_DIR", "font", "text_width", "wrap_text"]

FONT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fonts"
_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}


@lru_cache(maxsize=64)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / _FILES[bold]), max(1, int(size)))


def text_width(text: str, face: ImageFont.FreeTypeFont) -> float:
    return face.getlength(text)


def wrap_text(text: str, face: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap to `width` pixels; a word longer than a line is broken by characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if face.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while face.getlength(word) > width and len(word) > 1:
                cut = len(word)
                while cut > 1 and face.getlength(word[:cut]) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines
