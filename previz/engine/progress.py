"""Render progress for people: a live rich display on a terminal, plain lines in logs and pipes.

Both show the dispatcher's public `Snapshot`, counted in the plan's units: generator calls (the
plan's last line counts them) and frames of takes (the plan's per-shot frames, once per take;
the cut is shorter where dissolves overlap two shots).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from previz.engine.dispatch import Snapshot

__all__ = ["make_display", "RichDisplay", "LineDisplay", "Display"]

SnapshotSource = Callable[[], Snapshot]


class Display:
    """What the engine calls: `update` as it goes, `update(final=True)` once at the end."""

    def __init__(self) -> None:
        self.started = time.time()

    def update(self, snapshot: SnapshotSource, final: bool = False) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def eta(self, f: Snapshot) -> float | None:
        """The cost model, corrected by how fast this cluster has actually been."""
        if f.estimate_done <= 0:
            return None
        return (time.time() - self.started) * (f.estimate - f.estimate_done) / f.estimate_done


def make_display(stream=None) -> Display:
    stream = stream or sys.stderr
    return RichDisplay(stream) if stream.isatty() else LineDisplay(stream)


def done_so_far(f: Snapshot) -> str:
    put_off = f", {f.put_off} shot(s) standing in for the deadline" if f.put_off else ""
    return (f"{f.tasks_done}/{f.tasks} generator calls, {f.frames_done}/{f.frames} frames of "
            f"takes, {f.failed} failed{put_off}")


def summary_line(f: Snapshot, elapsed: float, eta: float | None) -> str:
    return (f"{done_so_far(f)}, {f.busy}/{f.workers} workers busy, elapsed {elapsed:.0f}s, eta "
            + (f"{eta:.0f}s" if eta is not None else "?"))


def running_line(task) -> str:
    return (f"{task.shot} take {task.take} seg {task.segment + 1}/{task.segments} "
            f"{task.model}: step {task.step}/{task.steps}")


class LineDisplay(Display):
    """For Ray job logs and pipes: a line at the start, one every `interval` seconds, and a
    last one when the render ends."""

    def __init__(self, stream, interval: float = 5.0) -> None:
        super().__init__()
        self.stream, self.interval, self._last = stream, interval, None

    def update(self, snapshot: SnapshotSource, final: bool = False) -> None:
        now = time.time()
        if not final and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        f = snapshot()
        elapsed = now - self.started
        if final and not f.tasks:
            print("previz: nothing to render: every take is in the store", file=self.stream,
                  flush=True)
            return
        if final:
            print(f"previz: finished: {done_so_far(f)}, in {elapsed:.0f}s", file=self.stream,
                  flush=True)
            return
        print(f"previz: {summary_line(f, elapsed, self.eta(f))}", file=self.stream, flush=True)
        for task in f.running:
            print(f"previz:   {running_line(task)}", file=self.stream, flush=True)


class RichDisplay(Display):
    def __init__(self, stream) -> None:
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.start()
        self._last = 0.0

    def update(self, snapshot: SnapshotSource, final: bool = False) -> None:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        if not final and time.time() - self._last < 0.25:
            return
        self._last = time.time()
        f = snapshot()
        table = Table.grid(padding=(0, 1))
        table.add_row("calls", ProgressBar(total=f.tasks, completed=f.tasks_done, width=40),
                      f"{f.tasks_done}/{f.tasks} generator calls  {f.failed} failed"
                      + (f"  {f.put_off} standing in (deadline)" if f.put_off else ""))
        table.add_row("frames", ProgressBar(total=f.frames, completed=f.frames_done, width=40),
                      f"{f.frames_done}/{f.frames} frames of takes")
        eta = self.eta(f)
        table.add_row("pool", f"{f.busy}/{f.workers} workers busy ({f.gpus} GPUs)",
                      f"elapsed {time.time() - self.started:.0f}s  eta "
                      + (f"{eta:.0f}s" if eta is not None else "…"))
        for task in f.running:
            table.add_row("", running_line(task), "")
        self.live.update(table)

    def close(self) -> None:
        self.live.stop()
