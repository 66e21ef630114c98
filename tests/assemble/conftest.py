"""Fixtures for the assembly tests: small plans compiled from real storyboards, synthetic takes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from synth import write_take

from previz.assemble import TakeMedia
from previz.plan import plan_from_storyboard
from previz.plan.types import RenderPlan
from previz.storyboard import load_storyboard

WIDTH, HEIGHT = 256, 144
RATES = ["23.976", "24", "25", "29.97", "30"]


def make_plan(folder: Path, shots: list[tuple[int, str | None]], *, fps: str = "24",
              size: tuple[int, int] = (WIDTH, HEIGHT), prompts: dict[int, str] | None = None,
              notes: dict[int, str] | None = None, audio: Path | None = None,
              name: str = "board.yaml", locations: dict[str, str] | None = None,
              sounds: dict[int, Path] | None = None) -> RenderPlan:
    """A plan from a storyboard of draft shots: (frames, transition) per shot, where transition
    is None (a cut), 'dissolve 12' or 'fade 6' (from black), and may add 'out 8' (the shot's
    last 8 frames fade to black): 'dissolve 12, out 8', 'out 8'. `sounds`: shot index -> its
    sound file (beside the storyboard)."""
    prompts, notes = prompts or {}, notes or {}
    lines = ["previz: 1", "project: TESTPROJ", "sequence: SQ010", f"fps: {fps}",
             f"resolution: {size[0]}x{size[1]}", "defaults:", "  model: draft", "  seed: 7"]
    if audio is not None:
        lines.append(f"audio: {audio.name}")
    if locations:
        lines.append("locations:")
        lines += [f"  {name}: {_yaml_string(text)}" for name, text in locations.items()]
    lines.append("shots:")
    for index, (frames, transition) in enumerate(shots):
        prompt = prompts.get(index, f"shot {index + 1} of the test sequence")
        lines += [f"  - id: SH{(index + 1) * 10:04d}", f"    duration: {frames}f",
                  f"    prompt: {_yaml_string(prompt)}"]
        if index in notes:
            lines.append(f"    notes: {_yaml_string(notes[index])}")
        if sounds and index in sounds:
            lines.append(f"    audio: {sounds[index].name}")
        for part in (transition or "").split(","):
            if not part.strip():
                continue
            kind, length = part.split()
            if kind == "out":
                lines.append(f"    fade_out: {length}f")
                continue
            kind = {"fade": "fade_from_black"}.get(kind, kind)
            lines.append(f"    transition: {{type: {kind}, duration: {length}f}}")
    path = folder / name
    path.write_text(textwrap.dedent("\n".join(lines) + "\n"))
    return plan_from_storyboard(load_storyboard(path))


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_takes(plan: RenderPlan, folder: Path, *, status: str = "rendered",
                **options) -> dict[str, TakeMedia]:
    """A synthetic take per shot: shot number n (1-based) is take id n."""
    folder.mkdir(parents=True, exist_ok=True)
    takes = {}
    for index, shot in enumerate(plan.shots):
        path = write_take(folder / f"{shot.id}.mp4", index + 1, shot.frames, plan.fps_fraction,
                          plan.width, plan.height, **options)
        takes[shot.id] = TakeMedia(path, status, shot.selected_take.key)
    return takes


@pytest.fixture
def plan_factory(tmp_path: Path):
    def factory(shots, **kwargs) -> RenderPlan:
        return make_plan(tmp_path, shots, **kwargs)

    return factory


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/ at the repository root (gitignored): screenshots worth keeping."""
    folder = Path(__file__).resolve().parents[2] / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder
