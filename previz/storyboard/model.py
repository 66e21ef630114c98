"""The storyboard language as pydantic v2 models.

A storyboard reads like a shot list: project, sequence, rate and size, the cast and places named
in prompts, defaults every shot inherits, and the shots in cut order. Field-level rules live here;
rules that span fields (references between shots, files on disk) live in `checks.py`.
"""

from __future__ import annotations

import re
from enum import Enum
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from previz.storyboard.yaml_source import locate

__all__ = [
    "LANGUAGE_VERSION",
    "ID_PATTERN",
    "NAME_PATTERN",
    "MAX_SHOT_SECONDS",
    "MAX_SHOTS",
    "Rate",
    "Duration",
    "CameraMove",
    "ShotSize",
    "CameraAngle",
    "Camera",
    "Transition",
    "Settings",
    "Layout",
    "Performance",
    "LAYOUT_ANIMATIC",
    "Character",
    "Location",
    "Weights",
    "Shot",
    "Storyboard",
    "parse_rate",
    "parse_duration",
]

LANGUAGE_VERSION = 1
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
MAX_SHOT_SECONDS = 600
MAX_SHOTS = 5000
MAX_TAKES = 16
# Text encoders read a few hundred tokens (Wan's umT5 512, LTX-Video's T5 256, CogVideoX 226):
# a prompt, style or description of thousands of characters is a paste gone wrong.
MAX_TEXT_CHARS = 4000
MAX_NOTES_CHARS = 20000

# Editorial rates. NTSC rates are exact fractions so frame arithmetic never drifts.
RATES: dict[str, Fraction] = {
    "23.976": Fraction(24000, 1001),
    "24": Fraction(24),
    "25": Fraction(25),
    "29.97": Fraction(30000, 1001),
    "30": Fraction(30),
    "48": Fraction(48),
    "50": Fraction(50),
    "59.94": Fraction(60000, 1001),
    "60": Fraction(60),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def parse_rate(value: Any) -> str:
    """Normalise an fps value to one of RATES' keys ('23.976', '24', ...)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a frame rate — write one of {', '.join(RATES)}")
    text = str(value).strip()
    if text in RATES:
        return text
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        for key, rate in RATES.items():
            if abs(float(rate) - number) < 0.0015:
                return key
    raise ValueError(f"{value!r} is not a supported rate — write one of {', '.join(RATES)}")


Rate = Annotated[
    str,
    BeforeValidator(parse_rate),
    WithJsonSchema({"type": ["number", "string"], "enum": [*map(float, RATES), *RATES],
                    "description": "frames per second of the cut"}),
]

_DURATION = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>s|f)?\s*$")


def parse_duration(value: Any) -> str:
    """Normalise a duration to '<n>f' or '<seconds>s' (exact; frames are counted in the plan)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration — write 4s, 96f or 4.0")
    text = f"{value}s" if isinstance(value, (int, float)) else str(value)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"{value!r} is not a duration — write seconds (4s or 4.5) or frames (96f)"
        )
    number, unit = match["num"], match["unit"] or "s"
    if unit == "f" and "." in number:
        raise ValueError(f"{value!r} has a fractional frame count — write whole frames (96f)")
    amount = Fraction(number)
    if amount <= 0:
        raise ValueError(f"{value!r} is not positive — a shot lasts at least one frame")
    # Frame counts are checked against the cap once the storyboard's rate is known.
    if unit == "s" and amount > MAX_SHOT_SECONDS:
        raise ValueError(
            f"{value!r} is longer than {MAX_SHOT_SECONDS // 60} minutes — split the shot"
        )
    return f"{number}{unit}"


Duration = Annotated[
    str,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": ["number", "string"], "pattern": r"^\s*\d+(\.\d+)?\s*[sf]?\s*$",
                    "exclusiveMinimum": 0, "description": "4s, 96f, or a number of seconds"}),
]


class CameraMove(str, Enum):
    static = "static"
    pan_left = "pan_left"
    pan_right = "pan_right"
    tilt_up = "tilt_up"
    tilt_down = "tilt_down"
    dolly_in = "dolly_in"
    dolly_out = "dolly_out"
    truck_left = "truck_left"
    truck_right = "truck_right"
    crane_up = "crane_up"
    crane_down = "crane_down"
    orbit_left = "orbit_left"
    orbit_right = "orbit_right"
    handheld = "handheld"
    zoom_in = "zoom_in"
    zoom_out = "zoom_out"


class ShotSize(str, Enum):
    extreme_wide = "extreme_wide"
    wide = "wide"
    full = "full"
    medium_wide = "medium_wide"
    medium = "medium"
    medium_close = "medium_close"
    close = "close"
    extreme_close = "extreme_close"
    insert = "insert"
    over_the_shoulder = "over_the_shoulder"
    two_shot = "two_shot"
    pov = "pov"


class CameraAngle(str, Enum):
    eye_level = "eye_level"
    low = "low"
    high = "high"
    overhead = "overhead"
    dutch = "dutch"
    worms_eye = "worms_eye"
    birds_eye = "birds_eye"


class Camera(_Strict):
    """How the shot is framed and moves. Generators phrase it for their model's prompt guide."""

    move: CameraMove = CameraMove.static
    size: ShotSize | None = None
    angle: CameraAngle | None = None
    lens: Annotated[str, Field(pattern=r"^\d{1,4}(\.\d+)?mm$")] | None = Field(
        default=None, description="focal length such as 24mm"
    )
    speed: Annotated[float, Field(gt=0, le=4)] = Field(
        default=1.0, description="how far the move travels over the shot; 1.0 is a moderate move"
    )


class Transition(_Strict):
    """The transition into a shot from the one before it."""

    type: Literal["cut", "dissolve", "fade_from_black"] = "cut"
    duration: Duration | None = Field(
        default=None, description="12f or 0.5s; dissolve and fade need one"
    )

    @model_validator(mode="after")
    def _duration_matches_type(self) -> Transition:
        if self.type == "cut" and self.duration is not None:
            raise ValueError("a cut has no duration — remove duration or use type: dissolve")
        if self.type != "cut" and self.duration is None:
            raise ValueError(f"a {self.type} needs a duration such as 12f or 0.5s")
        return self


Id = Annotated[str, Field(pattern=ID_PATTERN)]
RelPath = Annotated[str, Field(min_length=1, max_length=1024)]


class Settings(_Strict):
    """What a shot may override. Unset fields inherit from `defaults`, then from the model."""

    model: str | None = Field(default=None, description="a catalog model or family, or `draft`")
    steps: Annotated[int, Field(ge=1, le=500)] | None = None
    guidance: Annotated[float, Field(ge=0, le=50)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    negative: str | None = Field(default=None, max_length=MAX_TEXT_CHARS,
                                 description="negative prompt")
    style: str | None = Field(default=None, max_length=MAX_TEXT_CHARS,
                              description="appended to every prompt")
    size: str | None = Field(
        default=None, description="generation size WxH; the model's default when unset"
    )
    references: Literal["auto", "required", "text"] | None = Field(
        default=None,
        description="character references: `auto` conditions on them where the model can and "
        "otherwise describes the character in text (noted in the plan); `required` makes a model "
        "without reference conditioning an error; `text` never conditions on them",
    )
    gpus: Literal[1, 2, 4, 8, "auto"] | None = Field(
        default=None,
        description="GPUs of one node a shot runs on (context parallelism: a shot of 2 runs on "
        "two GPUs nearly twice as fast); auto: the render chooses, one per shot while the queue "
        "is deep, more for the long shots left at the end; the model's own count when unset")
    options: dict[str, JsonValue] | None = Field(
        default=None,
        description="generator options: memory and speed (cpu_offload, group_offload, vae_tiling, "
        "compile, attention_backend) or quality (cache: first_block|taylorseer|magcache)",
    )

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value, "size")
        return value


def parse_size(value: str, field: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{2,5})\s*[xX]\s*(\d{2,5})\s*", str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size — write WIDTHxHEIGHT such as 1280x720")
    width, height = int(match[1]), int(match[2])
    wrong = []
    if width % 2 or height % 2:
        wrong.append("has an odd side (video needs even width and height)")
    if width > 7680 or height > 4320:
        wrong.append("is larger than 7680x4320")
    if wrong:
        raise ValueError(f"{value!r} {' and '.join(wrong)} — use an even delivery size such as "
                         "1280x720 or 3840x2160")
    return width, height


class Character(_Strict):
    description: str = Field(min_length=1, max_length=MAX_TEXT_CHARS,
                             description="how the character looks, in prompt words")
    reference: list[RelPath] = Field(
        default_factory=list,
        description="reference image(s), relative to the storyboard; keeps the character consistent",
    )

    @field_validator("reference", mode="before", json_schema_input_type=RelPath | list[RelPath])
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class DialogueLine(_Strict):
    """One line of a shot's dialogue, spoken by a character of the storyboard."""

    character: str = Field(description="a character's name, as under characters:")
    line: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)

    @model_validator(mode="before")
    @classmethod
    def _written_forms(cls, value: Any) -> Any:
        # KEEPER: "Not tonight."  (a YAML mapping of one)  or  "KEEPER: Not tonight."
        if isinstance(value, dict) and len(value) == 1 and "character" not in value:
            (name, line), = value.items()
            return {"character": name, "line": line}
        if isinstance(value, str):
            name, colon, line = value.partition(":")
            if colon and name.strip():
                return {"character": name.strip(), "line": line.strip().strip('"')}
            raise ValueError(f"{value!r} is not a line of dialogue — write NAME: \"the line\"")
        return value


# As it is written: KEEPER: "Not tonight." (a mapping of one), "KEEPER: Not tonight.", or in full.
_DIALOGUE_LINE_SCHEMA = {
    "description": 'a line of dialogue: KEEPER: "Not tonight."',
    "anyOf": [
        {"type": "object", "minProperties": 1, "maxProperties": 1,
         "additionalProperties": {"type": "string", "minLength": 1}},
        {"type": "string", "pattern": "^[^:]+:"},
        {"type": "object", "additionalProperties": False, "required": ["character", "line"],
         "properties": {"character": {"type": "string"},
                        "line": {"type": "string", "minLength": 1}}},
    ],
}


class Location(_Strict):
    description: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    reference: list[RelPath] = Field(default_factory=list)

    @field_validator("reference", mode="before", json_schema_input_type=RelPath | list[RelPath])
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


LAYOUT_ANIMATIC = "animatic"


class Layout(_Strict):
    """A video that fixes the shot's camera and staging, and how it reaches the model."""

    source: str = Field(
        min_length=1, max_length=1024,
        description="a video beside the storyboard (a playblast or greybox render from Maya, "
        "Unreal or Blender, a phone recording), or `animatic`: the shot's own draft take, which "
        "already draws its camera move")
    control: Literal["edges", "depth", "pose", "gray", "video"] = Field(
        default="edges",
        description="what of it steers the model: edges (outlines), depth (a depth model's "
        "estimate: weights: {depth: ...}), pose (the performer's skeleton: weights: {pose: "
        "...}), gray (grey levels) — a control video for a model that takes one (Wan VACE) — "
        "or video: its own pictures, restyled by the prompt (video-to-video)")
    strength: Annotated[float, Field(gt=0, le=1)] = Field(
        default=1.0, description="how firmly the layout holds (1: fully)")


class Performance(_Strict):
    """A recorded performance that drives a character (Wan 2.2 Animate): the performance video
    (its pose and face found by the pose model `weights: {pose: ...}` names), or the pose and
    face videos Wan-Animate's own preprocessing makes of it."""

    character: str = Field(description="the character it drives: its reference image is "
                                       "animated")
    video: RelPath | None = Field(default=None, description="the performance, as recorded")
    pose: RelPath | None = Field(default=None, description="or its pose video (src_pose.mp4)")
    face: RelPath | None = Field(default=None, description="and its face crops (src_face.mp4)")
    mode: Literal["animate", "replace"] = Field(
        default="animate", description="animate: the character performs in its reference's "
        "setting; replace: the character replaces the performer in the performance's plate")
    background: RelPath | None = Field(default=None, description="replace: the plate without "
                                                                 "the performer (src_bg.mp4)")
    mask: RelPath | None = Field(default=None, description="replace: where the performer is "
                                                           "(src_mask.mp4)")

    @model_validator(mode="after")
    def _replace_needs_its_plate(self) -> Performance:
        if (self.video is None) == (self.pose is None or self.face is None) or (
                self.video is not None and (self.pose or self.face)):
            raise ValueError("give the performance as video: (the recording: its pose and "
                             "face are found with the pose model weights: {pose: ...} names), "
                             "or as pose: and face: (Wan-Animate's preprocessed videos) — one "
                             "of the two")
        if self.video is not None:
            if self.background or self.mask:
                raise ValueError("background: and mask: come from the video: itself — drop "
                                 "them, or give pose: and face: instead of video:")
            return self
        if self.mode == "replace" and not (self.background and self.mask):
            raise ValueError("mode: replace needs background: and mask: (the plate without the "
                             "performer and where the performer is: src_bg.mp4, src_mask.mp4 "
                             "from Wan-Animate's preprocessing) — add them, or use mode: "
                             "animate")
        if self.mode == "animate" and (self.background or self.mask):
            raise ValueError("background: and mask: are for mode: replace — drop them, or use "
                             "mode: replace")
        return self


def _layout(value: Any) -> Any:
    return {"source": value} if isinstance(value, str) else value


def _location(value: Any) -> Any:
    return {"description": value} if isinstance(value, str) else value


class Weights(_Strict):
    """Where a model's weights live on the workers (a shared disk or a hub id) and which revision."""

    path: str = Field(min_length=1, description="a directory on the workers, or a hub repository id")
    revision: str | None = None


def _weights(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class Shot(Settings):
    id: Id = Field(description="shot code such as SH0010")
    duration: Duration
    prompt: str = Field(min_length=1, max_length=MAX_TEXT_CHARS,
                        description="what happens; {NAME} expands to a character or location")
    camera: Camera = Field(default_factory=Camera)
    image: RelPath | None = Field(default=None, description="a panel to animate (first frame)")
    last_image: RelPath | None = Field(default=None, description="a frame to end on")
    continues: Id | None = Field(
        default=None, alias="continue", description="start from the last frame of this shot"
    )
    takes: Annotated[int, Field(ge=1, le=MAX_TAKES)] = 1
    select: Annotated[int, Field(ge=1)] = Field(default=1, description="which take goes in the cut")
    transition: Transition = Field(default_factory=Transition)
    fade_out: Duration | None = Field(
        default=None, description="12f or 0.5s: the shot's last frames fade to black (on the "
        "last shot, the cut's tail fade)")
    notes: str | None = Field(default=None, max_length=MAX_NOTES_CHARS)
    dialogue: list[Annotated[DialogueLine, WithJsonSchema(_DIALOGUE_LINE_SCHEMA)]] = Field(
        default_factory=list, description='lines by character: - KEEPER: "Not tonight."')
    sound: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS,
                              description="effects and ambience, in words")
    performance: Performance | None = Field(
        default=None, description="a performance that drives a character: {character, pose, "
        "face, mode: animate|replace, background, mask} (Wan 2.2 Animate)")
    still: Literal["approved"] | None = Field(
        default=None, description="approved: the shot's keyframe still (previz render --stills) "
        "is the first frame of its motion pass")
    layout: Annotated[Layout, BeforeValidator(_layout, json_schema_input_type=str | Layout)
                      ] | None = Field(
        default=None, description="a video that fixes camera and staging: greybox/sh0040.mp4, "
        "animatic, or {source, control: edges|gray|video, strength}")
    mask: RelPath | None = Field(
        default=None, description="an image or video of the shot's aspect: white is generated, "
        "black kept — with image: a cinemagraph (only the white region moves), with a layout "
        "of control: video an inpainted plate")
    audio: str = Field(
        default="generated", min_length=1, max_length=1024,
        description="generated (the model's own sound, if it makes any), none (silent), or a "
                    "sound file beside the storyboard: the shot's temp track (48 kHz in the cut)")

    @field_validator("camera", mode="before", json_schema_input_type=Camera | CameraMove)
    @classmethod
    def _camera_shorthand(cls, value: Any) -> Any:
        return {"move": value} if isinstance(value, str) else value

    @field_validator("transition", mode="before",
                     json_schema_input_type=Transition | Literal["cut"])
    @classmethod
    def _transition_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class Storyboard(_Strict):
    previz: Literal[1] = Field(default=1, description="storyboard language version")
    project: Id
    sequence: Id
    fps: Rate = "24"
    resolution: str = Field(default="1280x720", description="the cut's delivery size WxH")
    defaults: Settings = Field(default_factory=Settings)
    characters: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Character] = Field(default_factory=dict)
    locations: dict[
        Annotated[str, Field(pattern=NAME_PATTERN)], Annotated[Location, BeforeValidator(_location, json_schema_input_type=str | Location)]
    ] = Field(default_factory=dict)
    weights: dict[str, Annotated[Weights, BeforeValidator(_weights, json_schema_input_type=str | Weights)]] = Field(
        default_factory=dict, description="model name -> weights directory on the workers"
    )
    audio: RelPath | None = Field(default=None, description="an audio bed laid under the cut")
    ducking: Annotated[float, Field(ge=0, le=40)] = Field(
        default=0.0, description="dB the audio bed dips under shots with dialogue (0: none)")
    notes: str | None = Field(default=None, max_length=MAX_NOTES_CHARS)
    shots: list[Shot] = Field(min_length=1, max_length=MAX_SHOTS)

    # Where the storyboard came from and what its checks read on disk: set by the loader
    # through `read_from` and `checked`, not part of the language.
    _source: str = PrivateAttr(default="<storyboard>")
    _folder: str = PrivateAttr(default=".")
    _positions: dict[tuple, tuple[int, int]] = PrivateAttr(default_factory=dict)
    _files: dict[str, Any] = PrivateAttr(default_factory=dict)
    _weights: dict[str, str] = PrivateAttr(default_factory=dict)

    def read_from(self, source: str, folder: str,
                  positions: dict[tuple, tuple[int, int]]) -> None:
        """Where this storyboard was read: its name, folder and the position of each field."""
        self._source, self._folder, self._positions = source, folder, positions

    def checked(self, checked: Any) -> None:
        """What its checks read on disk (a `CheckedFiles`): files and resolved weights."""
        self._files, self._weights = dict(checked.files), dict(checked.weights)

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str) -> str:
        parse_size(value, "resolution")
        return value

    @property
    def fps_fraction(self) -> Fraction:
        return RATES[self.fps]

    @property
    def size(self) -> tuple[int, int]:
        return parse_size(self.resolution, "resolution")

    @property
    def source(self) -> str:
        return self._source

    @property
    def folder(self) -> str:
        return self._folder

    def locate(self, path: tuple) -> tuple[int, int]:
        """(line, column) of a field path such as ('shots', 3, 'model'), or the nearest parent's."""
        return locate(self._positions, path)

    def file(self, relative: str) -> Any:
        """The checked `StoryboardFile` (absolute path, sha256) for a path the storyboard names."""
        return self._files[relative]

    def weights_for(self, model: str) -> Weights | None:
        """The weights given for a model (or family) name, a relative folder resolved against
        the storyboard's folder."""
        weights = self.weights.get(model)
        if weights is None:
            return None
        return weights.model_copy(update={"path": self._weights.get(model, weights.path)})
