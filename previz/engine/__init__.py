"""Stage 4: run a render plan on a Ray cluster (warm workers, dispatch, retries, resume)."""

from previz.engine.graph import WorkGraph
from previz.engine.render import (
    EngineSettings,
    RenderInterrupted,
    RenderReport,
    ShotOutcome,
    render_plan,
)

__all__ = [
    "EngineSettings",
    "RenderInterrupted",
    "RenderReport",
    "ShotOutcome",
    "WorkGraph",
    "render_plan",
]
