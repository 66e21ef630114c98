"""The storyboard's JSON Schema, for editors with a YAML language server."""

from __future__ import annotations

from typing import Any

from previz.catalog import known_model_names
from previz.storyboard.model import Storyboard

__all__ = ["storyboard_json_schema"]


def storyboard_json_schema() -> dict[str, Any]:
    schema = Storyboard.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "previz storyboard"
    schema["description"] = (
        "A shot list previz renders into a pre-vis cut. Add `# yaml-language-server: "
        "$schema=<path to this file>` at the top of a storyboard for completion and checks."
    )
    # Offer the catalog's names as completions while still accepting a family or new model.
    settings = schema.get("$defs", {}).get("Settings", {}).get("properties", {})
    if "model" in settings:
        settings["model"]["examples"] = known_model_names()
    return schema
