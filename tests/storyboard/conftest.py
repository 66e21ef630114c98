import textwrap
from pathlib import Path

import pytest
from PIL import Image
from storyboard_text import BASE


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
