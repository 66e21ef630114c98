"""Stage 1: the storyboard language and its loader."""

from previz.storyboard.checks import StoryboardFile
from previz.storyboard.loader import load_storyboard, storyboard_from_text
from previz.storyboard.model import (
    Camera,
    Character,
    Location,
    Settings,
    Shot,
    Storyboard,
    Transition,
)
from previz.storyboard.timing import frames_of, timecode

__all__ = [
    "Camera",
    "Character",
    "Location",
    "Settings",
    "Shot",
    "Storyboard",
    "StoryboardFile",
    "Transition",
    "frames_of",
    "load_storyboard",
    "storyboard_from_text",
    "timecode",
]
