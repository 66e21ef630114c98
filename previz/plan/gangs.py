"""How many GPUs each shot gets when the render may choose (`gpus: auto`): the dispatcher decides
with it as it goes, the forecast with it beforehand. Pure: no ray, no clock.

A shot split across a gang of n GPUs runs nearly n times faster but not quite (context
parallelism's all-to-all costs a little), so one GPU per shot does the most work per GPU-second,
and widening pays only where one shot would otherwise set the end of the night. This is the
allotment step of two-phase malleable scheduling (Turek, Wolf and Yu 1992; Ludwig and Tiwari
1994): choose each task's width to bring down the larger of the two lower bounds of a schedule —
all the work spread over all the GPUs, and the longest task — then list-schedule the tasks
longest first (the dispatcher's ready order). Greedily: while the longest task takes longer than
the work per GPU, widen it to its next size if that lowers the bound (by more than 2%). A deadline adds one rule:
a task that would not finish in the time left at its width is widened until it does.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Malleable", "allot", "WORTH_WIDENING"]

# A wider gang must bring the end closer by more than this share: a gain within the estimates'
# noise is not worth the efficiency a wider gang gives up (or forming it).
WORTH_WIDENING = 0.02


@dataclass(frozen=True)
class Malleable:
    """A task not yet started, with the gang sizes it may run on and the seconds until it would
    finish on each (during a render: its run, plus the wait for a worker of that size)."""

    key: str
    sizes: tuple[int, ...]  # narrowest first
    seconds: tuple[float, ...]  # on each size
    work: tuple[float, ...] | None = None  # GPU-seconds on each size (default: seconds x size)

    def gpu_seconds(self, index: int) -> float:
        if self.work is not None:
            return self.work[index]
        return self.seconds[index] * self.sizes[index]


def allot(tasks: Iterable[Malleable], gpus: int, busy_gpu_seconds: float = 0.0,
          largest_node: int | None = None, time_left: float | None = None) -> dict[str, int]:
    """Each task's gang size. `gpus`: the GPUs the render has; `busy_gpu_seconds`: work already
    running on them; `largest_node`: no gang is wider; `time_left`: seconds to a deadline."""
    tasks = list(tasks)
    widest = min(gpus, largest_node or gpus)
    limit = {t.key: max((i for i, n in enumerate(t.sizes) if n <= widest), default=0)
             for t in tasks}
    chosen = {t.key: 0 for t in tasks}
    work = busy_gpu_seconds + sum(t.gpu_seconds(0) for t in tasks)
    by_key = {t.key: t for t in tasks}
    longest = [(-t.seconds[0], t.key) for t in tasks]
    heapq.heapify(longest)
    while longest and gpus > 0:
        negative, key = longest[0]
        task, index = by_key[key], chosen[key]
        seconds = -negative
        if seconds <= work / gpus or index >= limit[key]:
            # the work sets the end (widening only adds to it), or this task, already as wide
            # as it can be: widening another would not bring the end closer
            break
        wider = index + 1
        more_work = work - task.gpu_seconds(index) + task.gpu_seconds(wider)
        if max(more_work / gpus, task.seconds[wider]) >= seconds * (1 - WORTH_WIDENING):
            break
        chosen[key], work = wider, more_work
        heapq.heapreplace(longest, (-task.seconds[wider], key))
    if time_left is not None:
        for task in tasks:
            index = chosen[task.key]
            while task.seconds[index] > time_left and index < limit[task.key]:
                index += 1
            chosen[task.key] = index
    return {key: by_key[key].sizes[index] for key, index in chosen.items()}
