"""Render progress for people: a live rich display on a terminal, plain periodic lines in logs."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

__all__ = ["make_display", "RichDisplay", "LineDisplay"]


def make_display(plan, stream=None):
    stream = stream or sys.stderr
    return RichDisplay(plan, stream) if stream.isatty() else LineDisplay(plan, stream)


class _Summary:
    """Figures both displays show, computed from the dispatcher's state."""

    def __init__(self, plan) -> None:
        self.plan = plan
        self.started = time.time()
        self._steps: dict[str, tuple[int, int, float]] = {}
        self._last_poll = 0.0

    def figures(self, dispatcher: Any) -> dict[str, Any]:
        graph = dispatcher.graph
        # Work put off for a deadline is no longer to be done: its stand-ins are.
        states = [s for s in graph.states.values() if s.status not in ("skipped", "deferred")]
        put_off = {s.task.shot_id for s in graph.states.values() if s.status == "deferred"}
        done = [s for s in states if s.status == "done"]
        failed = [s for s in states if s.status in ("failed", "blocked")]
        running = [s for s in states if s.status == "running"]
        frames_total = sum(s.task.num_frames for s in states)
        frames_done = sum(s.task.num_frames for s in done)
        estimate_total = sum(s.task.estimate_seconds for s in states) or 1.0
        estimate_done = sum(s.task.estimate_seconds for s in done)
        elapsed = time.time() - self.started
        busy = sum(1 for slot in dispatcher.slots if slot.queue)
        gpus = sum(slot.gpus for slot in dispatcher.slots) or 0
        eta = None
        if estimate_done > 0:
            # The cost model, corrected by how fast this cluster has actually been.
            eta = elapsed * (estimate_total - estimate_done) / estimate_done
        if time.time() - self._last_poll > 1.0:
            import ray

            with contextlib.suppress(Exception):  # progress is best effort
                self._steps = ray.get(dispatcher.progress.snapshot.remote(), timeout=2)
            self._last_poll = time.time()
        lines = []
        for state in running:
            step, total, _ = self._steps.get(state.key, (0, state.task.steps, 0))
            lines.append(f"{state.task.shot_id} take {state.task.take} "
                         f"seg {state.task.segment + 1}/{state.task.segments} "
                         f"{state.task.model}: step {step}/{total}")
        return {"done": len(done), "total": len(states), "failed": len(failed),
                "put_off": len(put_off),
                "frames_done": frames_done, "frames_total": frames_total,
                "busy": busy, "workers": len(dispatcher.slots), "gpus": gpus,
                "elapsed": elapsed, "eta": eta, "running": lines}


class LineDisplay(_Summary):
    """For Ray job logs and pipes: one plain line every `interval` seconds."""

    def __init__(self, plan, stream, interval: float = 10.0) -> None:
        super().__init__(plan)
        self.stream, self.interval, self._last = stream, interval, 0.0

    def update(self, dispatcher: Any) -> None:
        if time.time() - self._last < self.interval:
            return
        self._last = time.time()
        f = self.figures(dispatcher)
        eta = f"{f['eta']:.0f}s" if f["eta"] is not None else "?"
        put_off = (f", {f['put_off']} shot(s) standing in for the deadline" if f["put_off"]
                   else "")
        print(f"previz: {f['done']}/{f['total']} tasks, {f['frames_done']}/{f['frames_total']} "
              f"frames, {f['failed']} failed{put_off}, {f['busy']}/{f['workers']} workers busy, "
              f"elapsed {f['elapsed']:.0f}s, eta {eta}", file=self.stream, flush=True)
        for line in f["running"]:
            print(f"previz:   {line}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichDisplay(_Summary):
    def __init__(self, plan, stream) -> None:
        super().__init__(plan)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def update(self, dispatcher: Any) -> None:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        f = self.figures(dispatcher)
        table = Table.grid(padding=(0, 1))
        table.add_row("shots", ProgressBar(total=f["total"], completed=f["done"], width=40),
                      f"{f['done']}/{f['total']} tasks  {f['failed']} failed"
                      + (f"  {f['put_off']} standing in (deadline)" if f["put_off"] else ""))
        table.add_row("frames", ProgressBar(total=f["frames_total"], completed=f["frames_done"],
                                            width=40), f"{f['frames_done']}/{f['frames_total']}")
        eta = f"{f['eta']:.0f}s" if f["eta"] is not None else "…"
        table.add_row("pool", f"{f['busy']}/{f['workers']} workers busy ({f['gpus']} GPUs)",
                      f"elapsed {f['elapsed']:.0f}s  eta {eta}")
        for line in f["running"]:
            table.add_row("", line, "")
        self.live.update(table)

    def close(self) -> None:
        self.live.stop()
