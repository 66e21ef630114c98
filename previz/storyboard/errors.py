"""Turn pydantic's validation errors into located, actionable storyboard messages."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["field_name", "messages_from_validation_error", "did_you_mean"]


def field_name(loc: tuple) -> str:
    """('shots', 2, 'camera', 'move') -> 'shots[2].camera.move'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "storyboard"


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the last element of `loc`, following lists and dicts."""
    current: Any = root
    for part in loc:
        model = _unwrap_model(current)
        if model is None or isinstance(part, int):
            current = _item_type(current)
            continue
        field = _field_by_name(model, part)
        current = field.annotation if field else _item_type(current)
    return _unwrap_model(current)


def _field_by_name(model: type[BaseModel], name: str):
    for field_name_, field in model.model_fields.items():
        if name in (field_name_, field.alias):
            return field
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _item_type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in args:
            inner = _item_type(arg)
            if inner is not arg:
                return inner
    return annotation


def messages_from_validation_error(
    error: ValidationError, root: type[BaseModel]
) -> list[tuple[tuple, str]]:
    """[(loc, message)] for every error, loc usable with Storyboard.locate()."""
    results: list[tuple[tuple, str]] = []
    seen: set[tuple] = set()
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if not _is_internal(part))
        kind, value, ctx = item["type"], item.get("input"), item.get("ctx") or {}
        parent, last = loc[:-1], (loc[-1] if loc else "")
        if kind == "extra_forbidden":
            model = _model_at(root, parent)
            allowed = _allowed_keys(model) if model else []
            hint = did_you_mean(last, allowed) or (
                f" — allowed here: {', '.join(allowed)}" if allowed else ""
            )
            message = f"{field_name(parent)}: unknown field {str(last)!r}{hint}"
        elif kind == "missing":
            message = f"{field_name(parent)}: missing required field {str(last)!r}"
        elif kind in ("value_error", "assertion_error"):
            reason = str(ctx.get("error", item["msg"]))
            message = f"{field_name(loc)}: {reason}"
        elif kind in ("enum", "literal_error"):
            allowed = _choices(ctx)
            message = (
                f"{field_name(loc)}: {_show(value)} is not allowed — use one of "
                f"{', '.join(allowed)}{did_you_mean(value, allowed)}"
            )
        elif kind == "string_pattern_mismatch":
            message = f"{field_name(loc)}: {_show(value)} {_pattern_advice(ctx.get('pattern', ''))}"
        elif kind in ("too_short", "string_too_short") and isinstance(value, (list, str, dict)):
            message = f"{field_name(loc)}: must not be empty"
        elif kind == "string_too_long" and isinstance(value, str):
            message = (
                f"{field_name(loc)}: {len(value):,} characters is more than the "
                f"{ctx.get('max_length'):,} allowed — a model reads a few hundred words at most; "
                "shorten it (notes and descriptions too)"
            )
        elif kind == "too_long" and isinstance(value, list):
            message = (
                f"{field_name(loc)}: {len(value)} items is more than the {ctx.get('max_length')} "
                "allowed — split the storyboard"
            )
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = f"{field_name(loc)}: expected a mapping of fields, got {_show(value)}"
        elif kind == "list_type":
            message = f"{field_name(loc)}: expected a list (items starting with '-'), got {_show(value)}"
        else:
            message = f"{field_name(loc)}: {_show(value)} is not valid — {item['msg'].lower()}"
        if (loc, message) not in seen:
            seen.add((loc, message))
            results.append((loc, message))
    return results


def _is_internal(part: Any) -> bool:
    # pydantic inserts validator names for Annotated/union members; they are not field paths.
    return isinstance(part, str) and (
        part.startswith("function-") or part in ("[key]", "str", "int", "float", "bool")
        or "[" in part
    )


def _choices(ctx: dict) -> list[str]:
    expected = str(ctx.get("expected", ""))
    parts = [p.strip().strip("'\"") for p in expected.replace(" or ", ",").split(",")]
    return [p for p in parts if p]


def _pattern_advice(pattern: str) -> str:
    if "A-Za-z0-9_-" in pattern:
        return "is not a valid id — use 1 to 64 letters, digits, '_' or '-' (such as SH0010)"
    if "A-Za-z][A-Za-z0-9_]" in pattern:
        return "is not a valid name — start with a letter, then letters, digits or '_' (such as KEEPER)"
    if "mm" in pattern:
        return "is not a lens — write a focal length such as 35mm"
    return f"does not match the pattern {pattern}"

