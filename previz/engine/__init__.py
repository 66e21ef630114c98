"""Stage 4: run a render plan on a Ray cluster (warm workers, dispatch, retries, resume).

The rules are a pure state machine (`dispatch`, with the `deadline` policy and the work `graph`);
`render` is the Ray side around it; `worker` is the warm actor on each GPU.
"""

from typing import Any

from previz.engine.graph import TaskStatus, WorkGraph
from previz.engine.types import (
    EngineSettings,
    RenderInterrupted,
    RenderReport,
    ShotOutcome,
    ShotStatus,
)

__all__ = [
    "EngineSettings",
    "RenderInterrupted",
    "RenderReport",
    "ShotOutcome",
    "ShotStatus",
    "TaskStatus",
    "WorkGraph",
    "render_plan",
]


def __getattr__(name: str) -> Any:
    # `render_plan` brings Ray's side and the Parquet ledger: loaded when first asked for, so
    # `previz status` and the other job commands (previz.engine.jobs) start light.
    if name == "render_plan":
        from previz.engine.render import render_plan

        return render_plan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
