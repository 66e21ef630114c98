"""Stage 2: compile a storyboard into a render plan (pure: no ray, no torch)."""

from previz.plan.compile import plan_from_storyboard
from previz.plan.types import (
    CameraSpec,
    Conditioning,
    RenderPlan,
    Retime,
    ShotPlan,
    ShotTask,
    TakePlan,
    TransitionSpec,
)

__all__ = [
    "CameraSpec",
    "Conditioning",
    "RenderPlan",
    "Retime",
    "ShotPlan",
    "ShotTask",
    "TakePlan",
    "TransitionSpec",
    "plan_from_storyboard",
]
