"""Synthetic takes whose every frame says which take and which frame it is.

A frame carries two rows of 16 blocks at the top: row 0 is the frame number (16 bits), row 1 is
the take's id (8 bits) and its complement (8 bits, a check). Below, the picture is a flat grey
whose level belongs to the take, so a dissolve is measurable: the level of a blended frame lies
between the two takes' levels in proportion to the mix.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from previz.media.encode import encode_take

BITS = 16


def level_of(take_id: int) -> int:
    """The flat grey of a take's picture area: well apart for neighbouring ids."""
    return 40 + (take_id * 67) % 176


def block_size(width: int, height: int) -> int:
    return max(2, width // BITS)


def synthetic_frame(take_id: int, frame: int, width: int, height: int) -> np.ndarray:
    image = np.full((height, width, 3), level_of(take_id), np.uint8)
    block = block_size(width, height)
    image[: 2 * block] = 0
    check = (~take_id) & 0xFF
    for bit in range(BITS):
        if frame >> (BITS - 1 - bit) & 1:
            image[0:block, bit * block:(bit + 1) * block] = 255
        code = (take_id << 8 | check) >> (BITS - 1 - bit) & 1
        if code:
            image[block:2 * block, bit * block:(bit + 1) * block] = 255
    return image


def synthetic_frames(take_id: int, count: int, width: int, height: int) -> np.ndarray:
    return np.stack([synthetic_frame(take_id, i, width, height) for i in range(count)])


def read_code(image: np.ndarray) -> tuple[int, int] | None:
    """(take id, frame number) of a decoded frame, or None when the blocks do not read cleanly
    (a blended frame, or a frame that is not one of ours)."""
    height, width = image.shape[:2]
    block = block_size(width, height)
    margin = max(1, block // 4)
    values = []
    for row in range(2):
        for bit in range(BITS):
            patch = image[row * block + margin:(row + 1) * block - margin,
                          bit * block + margin:(bit + 1) * block - margin]
            mean = float(patch.mean())
            if 60 < mean < 195:
                return None
            values.append(1 if mean >= 128 else 0)
    frame = int("".join(map(str, values[:BITS])), 2)
    code = int("".join(map(str, values[BITS:])), 2)
    take_id, check = code >> 8, code & 0xFF
    if check != (~take_id) & 0xFF:
        return None
    return take_id, frame


def picture_level(image: np.ndarray) -> float:
    """Mean level of the flat picture area (below the code rows)."""
    height, width = image.shape[:2]
    block = block_size(width, height)
    return float(image[3 * block:, :].mean())


def write_take(path: Path, take_id: int, frames: int, fps: Fraction | str, width: int,
               height: int, **options) -> Path:
    encode_take(synthetic_frames(take_id, frames, width, height), Fraction(fps), path,
                width=width, height=height, **options)
    return Path(path)
