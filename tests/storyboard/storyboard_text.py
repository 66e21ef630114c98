"""A small valid storyboard the loader tests edit into bad ones."""

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
