import textwrap
from pathlib import Path

import pytest
from PIL import Image

BASE = """\
project: LIGHTHOUSE
sequence: SQ010
fps: 24
defaults: {model: draft}
characters:
  KEEPER:
    description: an old keeper
    reference: refs/keeper.png
locations:
  LAMP_ROOM: the lamp room
shots:
  - id: SH0010
    duration: 4s
    prompt: "{KEEPER} climbs into {LAMP_ROOM}"
  - id: SH0020
    duration: 3s
    prompt: "the lamp turns"
"""


@pytest.fixture
def board_dir(tmp_path: Path) -> Path:
    (tmp_path / "refs").mkdir()
    Image.new("RGB", (64, 48), (200, 180, 20)).save(tmp_path / "refs" / "keeper.png")
    return tmp_path


@pytest.fixture
def write_board(board_dir: Path):
    """Write a storyboard into a folder with a reference image; returns its path."""

    def write(text: str = BASE, name: str = "board.yaml") -> Path:
        path = board_dir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
