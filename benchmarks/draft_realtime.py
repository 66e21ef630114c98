"""How much faster than real time the draft animatic renders and encodes, on one CPU core.

Renders draft shots (title card and storyboard panel, several camera moves) at 1280x720 and
prints frames, seconds and the realtime factor (seconds of footage per second of work) for each
way a draft take can be made:

  array   the generator contract: `create_generator(...).generate(task)` -> RGB frame array,
          then `encode_take(...)` with the codec the draft asks for (h264-fast);
  direct  `DraftGenerator.render_take(task, path)`: the same pictures sampled as Y/Cb/Cr planes
          straight into the encoder (no frame array, no second colour conversion);
  engine  (opt-in: --paths engine) what a render worker does with a draft task: `render_take`,
          then the engine's `publish_encoded` (thumbnail, take record, publish into a
          store) — minus Ray.

The benchmark pins itself (and so the ffmpeg it starts) to one CPU core before measuring
(`--cpus 1`, the default; `--cpus 0` leaves the affinity alone), so the figure is the one-core
figure whatever the machine. Beside wall-clock time it reports the CPU time of this process and
its ffmpeg children: on a shared machine the CPU time is the fairer measure of what one
dedicated core takes. Each shot is rendered `--repeat` times and the run with the least CPU time
is kept.

    python benchmarks/draft_realtime.py
    python benchmarks/draft_realtime.py --moves dolly_in pan_right --seconds 8
    python benchmarks/draft_realtime.py --paths engine --repeat 1

The target (issue 4) is a realtime factor of at least 4 for every shot.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import resource
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from previz.catalog import model_spec
from previz.generate import create_generator
from previz.media.encode import CODECS, encode_take
from previz.plan.types import CameraSpec, Conditioning, Retime, ShotTask, TakePlan

PROMPT = ("{KEEPER} climbs the last steps into {LAMP_ROOM}, lantern in hand, while the storm "
          "throws rain against the glass")
DEFAULT_MOVES = ["static", "dolly_in", "pan_right", "crane_up", "orbit_left", "handheld"]
TARGET = 4.0
_PUBLISHED = itertools.count()


def make_task(move: str, *, width: int, height: int, frames: int, fps: float,
              panel: str | None) -> ShotTask:
    conditioning = (Conditioning(role="first_image", path=panel),) if panel else ()
    return ShotTask(
        key=f"bench-{move}-{'panel' if panel else 'card'}", shot_id="SH0010", take=1, segment=0,
        segments=1, generator="draft", model="draft", prompt=PROMPT, shot_prompt=PROMPT,
        camera=CameraSpec(move=move, size="wide", angle="low", lens="24mm"),
        characters=("KEEPER",), locations=("LAMP_ROOM",), seed=1234, steps=1, guidance=0.0,
        width=width, height=height, num_frames=frames, fps=fps, conditioning=conditioning,
        estimate_seconds=0.0, title="Keeper arrives; storm at its peak",
    )


def make_panel(path: Path, width: int, height: int, *, textured: bool = False) -> str:
    """A storyboard panel: flat fills and ink lines like a drawn frame, or (textured) a busy
    photographic picture, the hardest thing to encode."""
    rng = np.random.default_rng(7)
    if textured:
        pixels = rng.integers(0, 40, (height, width, 3), dtype=np.uint8) + np.linspace(
            40, 150, width, dtype=np.uint8)[None, :, None]
        image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    else:
        sky = np.linspace(0, 1, height)[:, None, None] * np.array([-60, -40, 10]) + np.array(
            [170, 190, 215])
        image = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.polygon([(0, height), (width * 0.2, height * 0.55), (width * 0.45, height * 0.7),
                  (width * 0.7, height * 0.5), (width, height * 0.65), (width, height)],
                 fill=(96, 110, 90), outline=(20, 20, 20), width=5)
    draw.rectangle([width * 0.62, height * 0.15, width * 0.7, height * 0.55], fill=(235, 230, 220),
                   outline=(20, 20, 20), width=5)  # the lighthouse
    for _ in range(40):
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(10, 80))
        draw.arc([x - r, y - r, x + r, y + r], 0, int(rng.integers(60, 300)), fill=(20, 20, 20),
                 width=3)
    image.save(path)
    return str(path)


def measure(generator, task: ShotTask, target: Path, path_kind: str, codec) -> dict:
    """Render and encode one task; wall and CPU seconds."""
    cpu_started = cpu_seconds()
    started = time.perf_counter()
    if path_kind == "engine":
        frames, codec_name = render_like_the_engine(generator, task, target)
        finished = time.perf_counter()
        row = {}
    elif path_kind == "array":
        result = generator.generate(task)
        rendered = time.perf_counter()
        codec = codec or CODECS[result.record["codec"]]
        encoded = encode_take(result.frames, Fraction(task.fps).limit_denominator(1001),
                              target, width=task.width, height=task.height,
                              codec_settings=codec)
        frames, codec_name = encoded.frames, codec.name
        del result  # lets the generator reuse the frame memory for the next shot
        finished = time.perf_counter()
        row = {"render": rendered - started, "encode": finished - rendered}
    else:  # rendering and encoding interleave
        encoded, record, _ = generator.render_take(task, target, codec_settings=codec)
        frames, codec_name = encoded.frames, record["codec"]
        finished = time.perf_counter()
        row = {}
    return {**row, "frames": frames, "total": finished - started,
            "cpu": cpu_seconds() - cpu_started, "codec": codec_name}


def render_like_the_engine(generator, task: ShotTask, target: Path) -> tuple[int, str]:
    """What a render worker does with a draft task: `render_take` straight into a file, then
    `publish_encoded` into a store (thumbnail, take record) — minus Ray."""
    from previz.engine.publish import publish_encoded, publishes_as_encoded
    from previz.store import open_store
    from previz.store.takes import read_take_record

    key = hashlib.sha256(f"{task.key}-{next(_PUBLISHED)}".encode()).hexdigest()
    take = TakePlan(key=key, shot_id=task.shot_id, take=1, seed=task.seed, selected=True,
                    tasks=(task,), width=task.width, height=task.height,
                    retime=Retime(source_fps=str(Fraction(task.fps)),
                                  cut_fps=str(Fraction(task.fps)),
                                  source_frames=task.num_frames, cut_frames=task.num_frames))
    assert publishes_as_encoded(task, take)
    encoded, record, _ = generator.render_take(task, target)
    store = open_store(str(target.parent / "store"))
    publish_encoded(store, task, take, encoded.path, record)
    return read_take_record(store, key)["retime"]["cut_frames"], record["codec"]


def pin_to_cores(count: int) -> list[int]:
    """Restrict this process (and the ffmpeg processes it starts) to `count` of the cores it
    may run on; 0 leaves the affinity alone. Returns the cores it runs on."""
    if not hasattr(os, "sched_setaffinity"):
        if count:
            print(f"warning: cannot pin to {count} core(s) on this platform; the figures are "
                  "for every core the process gets")
        return list(range(os.cpu_count() or 1))
    cores = sorted(os.sched_getaffinity(0))
    if count and count < len(cores):
        os.sched_setaffinity(0, cores[:count])
    return sorted(os.sched_getaffinity(0))


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (ffmpeg)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--moves", nargs="+", default=DEFAULT_MOVES)
    parser.add_argument("--codec", default=None,
                        help="encode settings (default: what the draft asks for)")
    parser.add_argument("--no-panel", action="store_true", help="title cards only")
    parser.add_argument("--textured-panel", action="store_true",
                        help="a noisy photographic panel instead of a drawn one (worst case)")
    parser.add_argument("--paths", nargs="+", default=["array", "direct"],
                        choices=["array", "direct", "engine"])
    parser.add_argument("--cpus", type=int, default=1,
                        help="pin to this many cores before measuring (0: do not pin)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="render each shot this many times and keep the fastest (the "
                             "machine may be shared)")
    args = parser.parse_args(argv)

    cores = pin_to_cores(args.cpus)
    if "engine" in args.paths:
        import previz.engine.publish  # noqa: F401 - imported (with ray) before any timing
        import previz.store  # noqa: F401
    frames = round(args.seconds * args.fps)
    print(f"draft realtime benchmark: {args.width}x{args.height}, {frames} frames at "
          f"{args.fps:g} fps, on {len(cores)} core(s) (CPU {', '.join(map(str, cores))}), "
          f"best of {args.repeat} by CPU time")
    generator = create_generator(model_spec("draft"))
    generator.load("cpu")
    codec = CODECS[args.codec] if args.codec else None
    summary: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="previz-bench-") as folder:
        panel = None if args.no_panel else make_panel(Path(folder) / "panel.png", 1600, 900,
                                                      textured=args.textured_panel)
        kinds = [("card", None)] + ([("panel", panel)] if panel else [])
        print(f"{'path':6} {'picture':8} {'move':11} {'frames':>6} {'render s':>9} "
              f"{'encode s':>9} {'total s':>8} {'realtime':>9} {'cpu s':>7} {'cpu realtime':>12}")
        for path_kind in args.paths:
            rows, cpu_rows = summary.setdefault(path_kind, ([], []))
            for kind, source in kinds:
                for move in args.moves:
                    task = make_task(move, width=args.width, height=args.height, frames=frames,
                                     fps=args.fps, panel=source)
                    target = Path(folder) / f"{path_kind}-{kind}-{move}.mp4"
                    row = min((measure(generator, task, target, path_kind, codec)
                               for _ in range(max(1, args.repeat))), key=lambda r: r["cpu"])
                    footage = row["frames"] / args.fps
                    rows.append(footage / row["total"])
                    cpu_rows.append(footage / row["cpu"])
                    render = f"{row['render']:>9.3f}" if "render" in row else f"{'-':>9}"
                    encode = f"{row['encode']:>9.3f}" if "encode" in row else f"{'-':>9}"
                    print(f"{path_kind:6} {kind:8} {move:11} {row['frames']:>6} {render} "
                          f"{encode} {row['total']:>8.3f} {rows[-1]:>8.2f}x "
                          f"{row['cpu']:>7.3f} {cpu_rows[-1]:>11.2f}x   {row['codec']}")
    for path_kind, (rows, cpu_rows) in summary.items():
        verdict = "meets" if min(cpu_rows) >= TARGET else "MISSES"
        print(f"{path_kind}: realtime factor (wall): min {min(rows):.2f}x, "
              f"mean {sum(rows) / len(rows):.2f}x; by CPU time: min {min(cpu_rows):.2f}x, "
              f"mean {sum(cpu_rows) / len(cpu_rows):.2f}x — {verdict} the target "
              f"(every shot >= {TARGET:g}x by CPU time)")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
