"""Rules that span fields: references between shots, names in prompts, timing, files on disk.

Each check yields `(field path, message)`; the loader turns paths into file:line:col. Files are
read once here (contained, size-capped, decoded) and their hashes kept for the plan's take keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from previz.storyboard.errors import did_you_mean, field_name
from previz.storyboard.model import LAYOUT_ANIMATIC, MAX_SHOT_SECONDS, Storyboard
from previz.storyboard.timing import frames_of

__all__ = ["StoryboardFile", "CheckedFiles", "check_storyboard", "check_named_files",
           "PROMPT_NAME", "MAX_FILE_BYTES", "MAX_PIXELS"]

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_AUDIO_BYTES = 500 * 1024 * 1024
MAX_VIDEO_BYTES = 500 * 1024 * 1024
MAX_PIXELS = 50_000_000
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP"}
AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".flac", ".mp3", ".m4a", ".aac"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
PROMPT_NAME = re.compile(r"\{([^{}]*)\}")
# A Hugging Face repository id: organisation/name.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

Issue = tuple[tuple, str]


@dataclass(frozen=True)
class StoryboardFile:
    """A file the storyboard names, checked and hashed."""

    relative: str
    path: str  # absolute, resolved
    sha256: str
    size: tuple[int, int] | None  # pixels, for images
    seconds: float | None = None  # length, for a shot's sound file or a video


@dataclass(frozen=True)
class CheckedFiles:
    """What the checks read on disk: every file the storyboard names (relative path -> checked
    file), and where each `weights:` entry points (model -> a path on the workers or a hub id)."""

    files: dict[str, StoryboardFile]
    weights: dict[str, str]


def check_storyboard(board: Storyboard) -> tuple[list[Issue], CheckedFiles]:
    issues: list[Issue] = []
    issues += _check_names(board)
    issues += _check_shots(board)
    files, file_issues = check_named_files(board.model_dump(
        by_alias=True, include={"characters": True, "locations": True, "audio": True,
                                "shots": {"__all__": {"image", "last_image", "audio", "layout",
                                                      "mask", "performance"}}}),
        board.folder)
    issues += file_issues
    weights, weight_issues = _check_weights(board)
    issues += weight_issues
    return issues, CheckedFiles(files, weights)


def _check_weights(board: Storyboard) -> tuple[dict[str, str], list[Issue]]:
    """Weights are read on the workers, from their working folder unless the path is absolute:
    a relative folder is resolved against the storyboard's folder (where `previz render` and a
    submitted job's workers find it); what is neither a folder there nor a hub id is refused."""
    folder = Path(board.folder).resolve()
    resolved: dict[str, str] = {}
    issues: list[Issue] = []
    for model, weights in board.weights.items():
        path = weights.path
        if path.startswith(("/", "~")):
            resolved[model] = path  # a path on the workers (a shared disk): not checked here
            continue
        pure = PurePosixPath(path)
        beside = (folder / Path(*pure.parts)).resolve() if pure.parts else folder
        if ".." not in pure.parts and beside.is_relative_to(folder) and beside.is_dir():
            resolved[model] = str(beside)
        elif HUB_ID.match(path) and not path.startswith("."):
            resolved[model] = path
        else:
            issues.append((("weights", model), (
                f"weights.{model}: {path!r} is neither a folder beside the storyboard (looked "
                f"in {folder}) nor a Hugging Face repository id (org/name) — weights are read "
                "on the workers: give an absolute path there (/mnt/models/...), a folder beside "
                "the storyboard, or a hub id")))
    return resolved, issues


def _check_names(board: Storyboard) -> Iterator[Issue]:
    for name in board.characters.keys() & board.locations.keys():
        yield ("locations", name), (
            f"locations.{name}: {name!r} is also a character — {{{name}}} must mean one thing; "
            "rename one of them"
        )
    known = list(board.characters) + list(board.locations)
    for index, shot in enumerate(board.shots):
        for match in PROMPT_NAME.finditer(shot.prompt):
            name = match.group(1)
            if name not in known:
                hint = did_you_mean(name, known) or (
                    f" — define it under characters: or locations: (known: {', '.join(known)})"
                    if known else " — define it under characters: or locations:"
                )
                yield ("shots", index, "prompt"), (
                    f"shots[{index}].prompt: {{{name}}} names no character or location{hint}"
                )
        for number, said in enumerate(shot.dialogue):
            if said.character not in board.characters:
                cast = list(board.characters)
                hint = did_you_mean(said.character, cast) or (
                    f" — define it under characters: (known: {', '.join(cast)})" if cast
                    else " — define it under characters:")
                yield ("shots", index, "dialogue", number), (
                    f"shots[{index}].dialogue[{number}]: {said.character!r} is not a character "
                    f"of the storyboard{hint}")
        performance = shot.performance
        if performance is not None:
            where = ("shots", index, "performance", "character")
            named = board.characters.get(performance.character)
            cast = list(board.characters)
            if named is None:
                hint = did_you_mean(performance.character, cast) or (
                    f" — define it under characters: (known: {', '.join(cast)})" if cast
                    else " — define it under characters:, with a reference image")
                yield where, (f"{field_name(where)}: {performance.character!r} is not a "
                              f"character of the storyboard{hint}")
            elif not named.reference:
                yield where, (f"{field_name(where)}: {performance.character} has no reference "
                              "image, and a performance animates one — give the character "
                              "reference: refs/NAME.png")
        stray = PROMPT_NAME.sub("", shot.prompt)
        if "{" in stray or "}" in stray:
            yield ("shots", index, "prompt"), (
                f"shots[{index}].prompt: unbalanced brace in {shot.prompt!r} — write {{NAME}} "
                "to name a character or location"
            )


def _check_shots(board: Storyboard) -> Iterator[Issue]:
    fps = board.fps_fraction
    first_index: dict[str, int] = {}
    for index, shot in enumerate(board.shots):
        if shot.id in first_index:
            yield ("shots", index, "id"), (
                f"shots[{index}].id: {shot.id!r} is already the id of shots[{first_index[shot.id]}] "
                "— shot ids must be unique"
            )
        else:
            first_index[shot.id] = index
    frames = [frames_of(shot.duration, fps) for shot in board.shots]
    for index, shot in enumerate(board.shots):
        where = f"shots[{index}]"
        if frames[index] > MAX_SHOT_SECONDS * fps:
            yield ("shots", index, "duration"), (
                f"{where}.duration: {shot.duration!r} is longer than {MAX_SHOT_SECONDS // 60} "
                f"minutes at {board.fps} fps — split the shot"
            )
        if shot.select > shot.takes:
            yield ("shots", index, "select"), (
                f"{where}.select: take {shot.select} does not exist — the shot has "
                f"{shot.takes} take(s); use 1 to {shot.takes} or raise takes"
            )
        if shot.continues is not None:
            if shot.continues == shot.id:
                yield ("shots", index, "continue"), (
                    f"{where}.continue: {shot.id!r} cannot continue itself — name an earlier shot"
                )
            elif shot.continues not in first_index:
                hint = did_you_mean(shot.continues, first_index)
                yield ("shots", index, "continue"), (
                    f"{where}.continue: no shot has id {shot.continues!r}{hint}"
                )
            if shot.image is not None:
                yield ("shots", index, "image"), (
                    f"{where}: has both image: and continue: — a shot starts from a panel or "
                    "from another shot's last frame, not both"
                )
        yield from _check_transition(board, index, frames)
        yield from _check_fade_out(board, index, frames)
    yield from _check_cycles(board, first_index)


def _check_transition(board: Storyboard, index: int, frames: list[int]) -> Iterator[Issue]:
    shot = board.shots[index]
    transition = shot.transition
    if transition.type == "cut" or transition.duration is None:
        return
    where = f"shots[{index}].transition"
    length = frames_of(transition.duration, board.fps_fraction)
    if transition.type == "dissolve":
        if index == 0:
            yield ("shots", index, "transition"), (
                f"{where}: the first shot has nothing to dissolve from — use fade_from_black"
            )
            return
        before = board.shots[index - 1]
        if length > frames[index - 1] or length > frames[index]:
            yield ("shots", index, "transition", "duration"), (
                f"{where}.duration: a {length}-frame dissolve is longer than {before.id} "
                f"({frames[index - 1]} frames) or {shot.id} ({frames[index]} frames) — shorten it"
            )
            return
        before_in = board.shots[index - 1].transition
        used = length + (
            frames_of(before_in.duration, board.fps_fraction)
            if before_in.type == "dissolve" and before_in.duration else 0
        )
        if used > frames[index - 1]:
            yield ("shots", index, "transition", "duration"), (
                f"{where}.duration: {before.id} is {frames[index - 1]} frames but its dissolves in "
                f"and out need {used} — shorten a dissolve or lengthen {before.id}"
            )
    elif length > frames[index]:
        yield ("shots", index, "transition", "duration"), (
            f"{where}.duration: a {length}-frame fade is longer than {shot.id} "
            f"({frames[index]} frames) — shorten it"
        )


def _check_fade_out(board: Storyboard, index: int, frames: list[int]) -> Iterator[Issue]:
    shot = board.shots[index]
    if shot.fade_out is None:
        return
    where = f"shots[{index}].fade_out"
    length = frames_of(shot.fade_out, board.fps_fraction)
    following = board.shots[index + 1] if index + 1 < len(board.shots) else None
    if following is not None and following.transition.type == "dissolve":
        yield ("shots", index, "fade_out"), (
            f"{where}: {following.id} dissolves from {shot.id}, which fades to black — remove "
            f"fade_out, or bring {following.id} in with fade_from_black or a cut")
        return
    coming_in = (frames_of(shot.transition.duration, board.fps_fraction)
                 if shot.transition.duration else 0)
    if length + coming_in > frames[index]:
        fades = (f"its {shot.transition.type} in ({coming_in}f) and fade out ({length}f)"
                 if coming_in else f"a {length}-frame fade out")
        yield ("shots", index, "fade_out"), (
            f"{where}: {shot.id} is {frames[index]} frames, shorter than {fades} — shorten "
            "the fade or lengthen the shot")


def _check_cycles(board: Storyboard, index_of: dict[str, int]) -> Iterator[Issue]:
    parent = {s.id: s.continues for s in board.shots if s.continues and s.continues != s.id}
    reported: set[str] = set()
    for start in parent:
        chain, current = [start], parent.get(start)
        while current is not None and current not in chain and current in parent:
            chain.append(current)
            current = parent.get(current)
        if current in chain and start not in reported:
            loop = chain[chain.index(current):] + [current]
            reported.update(loop)
            index = index_of[loop[0]]
            yield ("shots", index, "continue"), (
                f"shots[{index}].continue: shots continue each other in a loop "
                f"({' -> '.join(loop)}) — one of them must start fresh"
            )


def _named_files(data: Any) -> Iterator[tuple[tuple, str, str]]:
    """(field path, relative path, kind) of every file the storyboard's data names — as written
    (a reference one path or a list of them) or as validated. Values of the wrong type are left
    to the schema's messages."""
    if not isinstance(data, dict):
        return
    for group in ("characters", "locations"):
        entries = data.get(group)
        for name, entry in (entries.items() if isinstance(entries, dict) else ()):
            refs = entry.get("reference") if isinstance(entry, dict) else None
            refs = [refs] if isinstance(refs, str) else refs if isinstance(refs, list) else []
            for i, ref in enumerate(refs):
                if isinstance(ref, str):
                    yield (group, name, "reference", i), ref, "image"
    shots = data.get("shots")
    for index, shot in enumerate(shots if isinstance(shots, list) else ()):
        for field in ("image", "last_image"):
            value = shot.get(field) if isinstance(shot, dict) else None
            if isinstance(value, str):
                yield ("shots", index, field), value, "image"
        sound = shot.get("audio") if isinstance(shot, dict) else None
        if isinstance(sound, str) and sound not in SHOT_AUDIO_MODES:
            yield ("shots", index, "audio"), sound, "shot_audio"
        layout = shot.get("layout") if isinstance(shot, dict) else None
        if isinstance(layout, dict):
            layout, where = layout.get("source"), ("shots", index, "layout", "source")
        else:
            where = ("shots", index, "layout")
        if isinstance(layout, str) and layout != LAYOUT_ANIMATIC:
            yield where, layout, "video"
        performance = shot.get("performance") if isinstance(shot, dict) else None
        for name in ("video", "pose", "face", "background", "mask"):
            value = performance.get(name) if isinstance(performance, dict) else None
            if isinstance(value, str):
                yield ("shots", index, "performance", name), value, "video"
        mask = shot.get("mask") if isinstance(shot, dict) else None
        if isinstance(mask, str):
            yield ("shots", index, "mask"), mask, (
                "video" if PurePosixPath(mask).suffix.lower() in VIDEO_SUFFIXES else "image")
    if isinstance(data.get("audio"), str):
        yield ("audio",), data["audio"], "audio"


def check_named_files(data: Any, folder: str | Path
                      ) -> tuple[dict[str, StoryboardFile], list[Issue]]:
    """Every file the storyboard's data names, checked in `folder` — also when the data does
    not validate, so that every problem is reported at once."""
    folder = Path(folder).resolve()
    files: dict[str, StoryboardFile] = {}
    issues: list[Issue] = []
    failed: set[str] = set()
    for loc, relative, kind in _named_files(data):
        if relative in files or relative in failed:
            continue
        where = field_name(loc)
        try:
            files[relative] = _checked_file(folder, relative, kind)
        except _FileProblem as problem:
            failed.add(relative)
            issues.append((loc, f"{where}: {relative!r} {problem}"))
    return files, issues


SHOT_AUDIO_MODES = ("generated", "none")


class _FileProblem(Exception):
    pass


def _checked_file(folder: Path, relative: str, kind: str) -> StoryboardFile:
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", relative):
        raise _FileProblem("is an absolute path — name files relative to the storyboard's folder")
    if ".." in pure.parts:
        raise _FileProblem("uses '..' — keep files inside the storyboard's folder")
    candidate = folder / Path(*pure.parts)
    resolved = candidate.resolve()
    if not resolved.is_relative_to(folder):
        raise _FileProblem(
            "is a symlink that leads outside the storyboard's folder — copy the file in instead"
        )
    if not resolved.exists():
        raise _FileProblem(f"does not exist (looked in {folder}) — check the name")
    if not resolved.is_file():
        raise _FileProblem("is not a file")
    size = resolved.stat().st_size
    limit = (MAX_AUDIO_BYTES if kind in ("audio", "shot_audio") else
             MAX_VIDEO_BYTES if kind == "video" else MAX_FILE_BYTES)
    if size > limit:
        raise _FileProblem(
            f"is {size / 2**20:.1f} MB, over the {limit // 2**20} MB limit — use a smaller file"
        )
    if kind in ("audio", "shot_audio"):
        if resolved.suffix.lower() not in AUDIO_SUFFIXES:
            raise _FileProblem(
                f"is not an audio file — use one of {', '.join(sorted(AUDIO_SUFFIXES))}"
            )
        seconds = _check_audio(resolved, relative, whole=kind == "shot_audio")
        return StoryboardFile(relative, str(resolved), _sha256_of(resolved), None, seconds)
    if kind == "video":
        if resolved.suffix.lower() not in VIDEO_SUFFIXES:
            raise _FileProblem(
                f"is not a video file — use one of {', '.join(sorted(VIDEO_SUFFIXES))}")
        size, seconds = _check_video(resolved, relative)
        return StoryboardFile(relative, str(resolved), _sha256_of(resolved), size, seconds)
    data = resolved.read_bytes()
    pixels = _image_size(data)
    return StoryboardFile(relative, str(resolved), hashlib.sha256(data).hexdigest(), pixels)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


AUDIO_PROBE_SECONDS = 30
_AUDIO_FIX = "export it again as WAV, AIFF, FLAC, MP3 or AAC"


def _check_audio(path: Path, relative: str, whole: bool = False) -> float | None:
    """Decode the first second of the file's first audio stream (all of it when `whole`: a
    shot's sound, whose length and silence matter) with the ffmpeg binary the assembly uses (not
    torch, not ray): a corrupt file, or one with no sound, is refused here rather than at the
    end of a render, when the cut's picture is joined to the sound. Returns the length in
    seconds of a file decoded whole."""
    from previz.media.encode import ffmpeg_exe  # lazily: numpy, only when there is audio

    result = _probe([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
                      "-map", "0:a:0", *(() if whole else ("-t", "1")), "-ac", "1", "-ar",
                      "8000", "-f", "s16le", "-"], _AUDIO_FIX)
    log = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0:
        if "matches no streams" in log:
            raise _FileProblem("has no audio stream (a picture-only video?) — name a sound "
                               "file, or " + _AUDIO_FIX)
        raise _FileProblem(f"is not a decodable audio file ({_ffmpeg_reason(log, path, relative)})"
                           f" — {_AUDIO_FIX}")
    if not result.stdout:
        raise _FileProblem(f"holds no sound (it decodes to nothing) — {_AUDIO_FIX}")
    if not whole:
        return None
    samples = memoryview(result.stdout).cast("h")
    if max(samples, default=0) <= 1 and min(samples, default=0) >= -1:
        raise _FileProblem("is silent — give the shot's sound, or write audio: none")
    return len(samples) / 8000


_VIDEO_FIX = "export it again as H.264 or ProRes (MP4 or MOV)"
_DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_VIDEO_SIZE = re.compile(r"Stream #\d+:\d+.*?: Video: .*?[ ,](\d{2,5})x(\d{2,5})[ ,\[]")


def _check_video(path: Path, relative: str) -> tuple[tuple[int, int], float]:
    """Decode the first frame of the file's first video stream with the ffmpeg binary (as
    audio is checked): a file that is not a decodable video is refused where it is named.
    Returns its size and its length in seconds (from its header)."""
    from previz.media.encode import ffmpeg_exe

    result = _probe([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map",
                     "0:v:0", "-frames:v", "1", "-f", "null", "-"], _VIDEO_FIX)
    log = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0:
        if "matches no streams" in log:
            raise _FileProblem(f"has no video stream (a sound file?) — {_VIDEO_FIX}")
        raise _FileProblem(f"is not a decodable video ({_ffmpeg_reason(log, path, relative)})"
                           f" — {_VIDEO_FIX}")
    size, duration = _VIDEO_SIZE.search(log), _DURATION.search(log)
    if size is None or duration is None or "frame=    0" in log:
        raise _FileProblem(f"holds no picture ffmpeg can read — {_VIDEO_FIX}")
    hours, minutes, seconds = duration.groups()
    return ((int(size.group(1)), int(size.group(2))),
            int(hours) * 3600 + int(minutes) * 60 + float(seconds))


def _probe(command: list[str], fix: str):
    """Run an ffmpeg decode of a named file: one that hangs it, or an ffmpeg that does not
    start, is refused where the file is named, saying `fix`."""
    import subprocess

    try:
        return subprocess.run(command, capture_output=True, timeout=AUDIO_PROBE_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        raise _FileProblem(f"could not be decoded within {AUDIO_PROBE_SECONDS} s — "
                           f"{fix}") from None
    except OSError as error:
        raise _FileProblem(f"could not be checked: ffmpeg did not start ({error.strerror}) — "
                           "set PREVIZ_FFMPEG to an ffmpeg binary") from None


def _ffmpeg_reason(log: str, path: Path, relative: str) -> str:
    """The last line of ffmpeg's log, without its `[demuxer @ 0x...]` prefix or the absolute
    path, short enough for one line."""
    lines = [line.strip() for line in log.replace(str(path), relative).splitlines()
             if line.strip()]
    if not lines:
        return "ffmpeg could not read it"
    reason = re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", lines[-1])
    reason = re.sub(r"^Error opening input files?:\s*", "", reason)
    return reason[:160]


def _image_size(data: bytes) -> tuple[int, int]:
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in IMAGE_FORMATS:
                    raise _FileProblem(
                        f"is a {image.format} image — use PNG, JPEG or WebP"
                    )
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise _FileProblem(
                        f"is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
                        f"{MAX_PIXELS // 1_000_000} megapixel limit — scale it down"
                    )
                image.verify()
    except _FileProblem:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _FileProblem(
            f"is over the {MAX_PIXELS // 1_000_000} megapixel limit — scale it down"
        ) from None
    except Exception as error:  # PIL raises many types for undecodable bytes
        raise _FileProblem(f"is not a decodable image ({error.__class__.__name__}) — use PNG, "
                           "JPEG or WebP") from None
    return width, height
