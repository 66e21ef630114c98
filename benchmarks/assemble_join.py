"""Benchmark: joining takes into a cut (issue 6). Prints ratios; not a test.

    python benchmarks/assemble_join.py [--shots 100] [--seconds 2] [--size 1280x720]
                                       [--dissolves 10] [--repeat 3] [--keep DIR]

1. Cuts only: `join_cut` of N takes against a bare `ffmpeg -f concat -c copy` of the same files,
   measured in the same run (target: within 1.2x).
2. The same takes with D dissolves: `join_cut` against re-encoding the whole cut with the same
   encoder settings (target: at least 5x faster). The baseline only decodes and encodes the
   finished cut's frames — less work than any real full re-encode, which must also blend — so
   the ratio is a floor.

Takes are made once with `previz.media.encode.encode_take` (kept in --keep DIR between runs):
ten distinct moving patterns, each copied to N / 10 files.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from previz.assemble import join_cut
from previz.assemble.ffmpeg import concat_list
from previz.media.encode import H264, encode_take, ffmpeg_exe, h264_level
from previz.plan import plan_from_storyboard
from previz.storyboard import load_storyboard


def pattern(index: int, frames: int, width: int, height: int) -> np.ndarray:
    """A moving gradient with a bar and a disc: cheap to make, realistic to encode."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        phase = t / frames * 2 * np.pi + index
        red = 128 + 100 * np.sin(x / width * 6 + phase)
        green = 128 + 100 * np.cos(y / height * 4 - phase + index)
        blue = 128 + 90 * np.sin((x + y) / (width + height) * 8 + phase * 2)
        frame = np.stack([red, green, blue], axis=-1)
        left = int((t * 11 + index * 97) % (width - 80))
        frame[:, left:left + 40] = (240, 220, 40)
        cy, cx = height // 2, int(width * (0.2 + 0.6 * t / frames))
        frame[(y - cy) ** 2 + (x - cx) ** 2 < (height // 8) ** 2] = (30, 60, 200)
        out[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def make_takes(folder: Path, shots: int, frames: int, fps: Fraction, width: int,
               height: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(shots):
        path = folder / f"SH{(index + 1) * 10:04d}.mp4"
        if not path.exists():
            source = folder / f"pattern{index % 10}.mp4"
            if not source.exists():
                encode_take(pattern(index % 10, frames, width, height), fps, source,
                            width=width, height=height)
            shutil.copyfile(source, path)
        paths.append(path)
    return paths


def storyboard(folder: Path, shots: int, seconds: float, size: str, fps: str,
               dissolves: int) -> Path:
    every = max(2, shots // dissolves) if dissolves else 0
    where = {every // 2 + k * every for k in range(dissolves)} if dissolves else set()
    lines = ["previz: 1", "project: BENCH", "sequence: SQ010", f"fps: {fps}",
             f"resolution: {size}", "defaults:", "  model: draft", "shots:"]
    for index in range(shots):
        lines += [f"  - id: SH{(index + 1) * 10:04d}", f"    duration: {seconds}s",
                  f"    prompt: shot {index + 1}"]
        if index in where:
            lines.append("    transition: {type: dissolve, duration: 12f}")
    path = folder / f"bench_{dissolves}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", default="24")
    parser.add_argument("--dissolves", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="keep the takes here")
    parser.add_argument("--jobs", type=int, default=None, help="parallel segment encodes")
    parser.add_argument("--no-full", action="store_true", help="skip the full re-encode")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="previz-bench-join-"))
    try:
        cut_plan = plan_from_storyboard(load_storyboard(
            storyboard(work, args.shots, args.seconds, args.size, args.fps, 0)))
        fps = cut_plan.fps_fraction
        frames = cut_plan.shots[0].frames
        started = time.perf_counter()
        takes = make_takes(args.keep or work / "takes", args.shots, frames, fps, width, height)
        print(f"{args.shots} takes of {frames} frames at {width}x{height}, {fps} fps "
              f"({time.perf_counter() - started:.1f}s to prepare)")

        # 1. cuts only: join_cut against a bare concat of the same files
        listing = work / "bare.txt"
        listing.write_text(concat_list([(p, None, None) for p in takes], fps))
        bare_cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "concat",
                    "-safe", "0", "-i", str(listing), "-c", "copy", str(work / "bare.mp4")]
        bare = timed(lambda: subprocess.run(bare_cmd, check=True), args.repeat)
        ours = timed(lambda: join_cut(cut_plan, takes, work / "cut.mp4",
                                      scratch=work / "scratch-cut"), args.repeat)
        print(f"cuts only:  bare concat {bare:.3f}s   join_cut {ours:.3f}s   "
              f"ratio {ours / bare:.2f}x (target <= 1.2x)")
        print("  bare: " + " ".join(bare_cmd[3:]))

        # 2. dissolves: join_cut against re-encoding the whole cut
        dissolve_plan = plan_from_storyboard(load_storyboard(
            storyboard(work, args.shots, args.seconds, args.size, args.fps, args.dissolves)))
        count = sum(s.transition.type == "dissolve" for s in dissolve_plan.shots)
        report = None

        def join_dissolves():
            nonlocal report
            shutil.rmtree(work / "scratch-diss", ignore_errors=True)
            report = join_cut(dissolve_plan, takes, work / "dissolves.mp4",
                              scratch=work / "scratch-diss", jobs=args.jobs)

        ours_d = timed(join_dissolves, args.repeat)
        print(f"  join_cut re-encoded {report.encoded_frames} of {report.frames} frames in "
              f"{report.encoded_pieces} pieces, stream-copied {report.copied_frames}: "
              f"{ours_d:.2f}s")
        if args.no_full:
            return 0
        params = dict(H264.x264_params)
        params.update(keyint=str(H264.gop), **{"min-keyint": str(H264.gop)})
        full_cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i",
                    str(work / "dissolves.mp4"), "-map", "0:v:0", "-c:v", H264.codec,
                    "-preset", H264.preset, "-crf", str(H264.crf), "-profile:v", H264.profile,
                    "-level:v", h264_level(width, height, fps), "-pix_fmt", H264.pix_fmt,
                    "-g", str(H264.gop), "-x264-params",
                    ":".join(f"{k}={v}" for k, v in params.items()), str(work / "full.mp4")]
        full = timed(lambda: subprocess.run(full_cmd, check=True), max(1, args.repeat - 1))
        print(f"{count} dissolves: re-encode whole cut {full:.2f}s   join_cut {ours_d:.2f}s   "
              f"speed-up {full / ours_d:.1f}x (target >= 5x)")
        print("  full: " + " ".join(full_cmd[3:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
