"""Camera moves as 2D views over a flat picture, for the draft animatic.

A `View` says where the camera looks in one frame, relative to the home framing (the picture
fitted to the frame): `x`, `y` offset of the view centre in frame widths and heights (camera
moves right: x grows and the picture slides left), `zoom` (2.0 shows half the width) and `roll`
in radians. Amounts are rates per second times the shot's duration, scaled by the camera speed
and clamped, so a slow 12 s crane does not leave the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["View", "camera_path", "MOVES", "PARALLAX", "describe_move"]


@dataclass(frozen=True)
class View:
    x: float = 0.0
    y: float = 0.0
    zoom: float = 1.0
    roll: float = 0.0


# per second at speed 1.0, and the most a whole shot may move
_ZOOM_RATE, _ZOOM_MAX = 0.06, 0.8  # log-zoom per second; the most: e^0.8 = 2.2x
_PAN_RATE, _PAN_MAX = 0.06, 0.36  # frame widths (or heights) per second
_ORBIT_RATE = 0.07

# move -> (kind, direction): direction is the sign of x/y/zoom change
MOVES: dict[str, tuple[str, int]] = {
    "static": ("static", 0),
    "dolly_in": ("zoom", 1), "zoom_in": ("zoom", 1),
    "dolly_out": ("zoom", -1), "zoom_out": ("zoom", -1),
    "pan_left": ("x", -1), "pan_right": ("x", 1),
    "truck_left": ("x", -1), "truck_right": ("x", 1),
    "tilt_up": ("y", -1), "tilt_down": ("y", 1),
    "crane_up": ("y", -1), "crane_down": ("y", 1),
    "orbit_left": ("orbit", -1), "orbit_right": ("orbit", 1),
    "handheld": ("handheld", 0),
}

# How far each layer of a title card travels relative to the camera, for moves with depth:
# (background, foreground card). A truck or crane moves near things more than far ones; an
# orbit keeps the subject near the centre while the background sweeps the other way.
PARALLAX: dict[str, tuple[float, float]] = {
    "truck_left": (0.45, 1.0), "truck_right": (0.45, 1.0),
    "crane_up": (0.45, 1.0), "crane_down": (0.45, 1.0),
    "orbit_left": (1.0, -0.3), "orbit_right": (1.0, -0.3),
}


def describe_move(move: str) -> str:
    return move.replace("_", " ")


def _ease(t: np.ndarray) -> np.ndarray:
    """Half linear, half smoothstep: a camera move that starts and lands gently."""
    return 0.5 * t + 0.5 * t * t * (3 - 2 * t)


def camera_path(move: str, *, speed: float, frames: int, fps: float, seed: int,
                centred: bool, max_zoom: float = math.exp(_ZOOM_MAX)) -> list[View]:
    """The view of every frame. `centred` runs translations from -d/2 to +d/2 around the home
    framing (title cards); otherwise they start at home (frame 0 is the picture as given).
    `max_zoom` caps how far a dolly or zoom goes (a title card must stay readable)."""
    kind, direction = MOVES.get(move, ("static", 0))
    if kind == "static" or frames <= 1:
        return [View()] * frames
    seconds = frames / fps
    speed = max(0.0, float(speed))
    t = _ease(np.linspace(0.0, 1.0, frames))
    start = -0.5 if centred else 0.0
    if kind == "zoom":
        total = min(_ZOOM_RATE * speed * seconds, _ZOOM_MAX, math.log(max(1.0, max_zoom)))
        return [View(zoom=math.exp(direction * total * v)) for v in t]
    if kind in ("x", "y"):
        total = min(_PAN_RATE * speed * seconds, _PAN_MAX) * direction
        offsets = (start + t) * total
        if kind == "x":
            return [View(x=float(v)) for v in offsets]
        return [View(y=float(v)) for v in offsets]
    if kind == "orbit":
        total = min(_ORBIT_RATE * speed * seconds, _PAN_MAX) * direction
        # a slight push in while circling reads as an orbit rather than a pan
        return [View(x=float((start + v) * total), zoom=1.0 + 0.04 * math.sin(math.pi * v))
                for v in t]
    return _handheld(speed=speed, frames=frames, fps=fps, seed=seed)


def _handheld(*, speed: float, frames: int, fps: float, seed: int) -> list[View]:
    """Smooth, deterministic shake: a few sines per axis with seeded frequencies and phases."""
    rng = np.random.default_rng(seed % 2**63)
    time = np.arange(frames) / fps
    amplitude = min(speed, 3.0)

    def wobble(scale: float) -> np.ndarray:
        frequencies = rng.uniform(0.15, 1.1, 3)
        phases = rng.uniform(0, 2 * math.pi, 3)
        weights = np.array([1.0, 0.5, 0.25])
        signal = sum(w * np.sin(2 * math.pi * f * time + p)
                     for w, f, p in zip(weights, frequencies, phases, strict=True))
        return scale * amplitude * signal / weights.sum()

    # Translation and a little breathing, no roll: a rolling frame would cost the encoder far
    # more than it adds to an animatic (every pixel would move differently).
    xs, ys = wobble(0.014), wobble(0.018)
    zooms = 1.0 + np.abs(wobble(0.012))
    return [View(x=float(x), y=float(y), zoom=float(z))
            for x, y, z in zip(xs, ys, zooms, strict=True)]
