"""Safe YAML reading that remembers where every value came from.

PyYAML's safe loader refuses object tags; on top of it we refuse alias bombs (a few lines of
anchors that expand to billions of nodes), duplicate keys, and record `(line, column)` of every
mapping key and sequence item so validation errors point at the exact spot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["YamlDocument", "YamlProblem", "read_yaml", "locate", "utf8_text", "yaml_files",
           "MAX_EXPANDED_NODES", "MAX_NESTING"]

YAML_SUFFIXES = (".yaml", ".yml")

# A 5,000-shot storyboard with 30 fields per shot is 150k nodes; an alias bomb is billions.
MAX_EXPANDED_NODES = 500_000
# Storyboards nest a few levels (shots, a shot, its camera or options); PyYAML itself recurses
# once per level and fails in the hundreds.
MAX_NESTING = 64

Position = tuple[int, int]


def yaml_files(paths: list[str]) -> list[Path]:
    """The files named, and every .yaml/.yml file below each folder named."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES)
        else:
            found.append(path)
    return found


def utf8_text(raw: bytes) -> str:
    """The file's text; a YamlProblem at the line of the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise YamlProblem(line, 1, "not UTF-8 text — save the file as UTF-8") from None


class YamlProblem(Exception):
    def __init__(self, line: int, column: int, message: str):
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


class YamlDocument:
    """The data of one YAML document plus the position of every field path in it."""

    def __init__(self, data: Any, positions: dict[tuple, Position]):
        self.data = data
        self.positions = positions


class _Loader(yaml.SafeLoader):
    pass


def read_yaml(text: str) -> YamlDocument:
    """Parse one YAML document. Raises YamlProblem with a 1-based position on any problem."""
    try:
        loader = _Loader(text)  # reads the whole text at once: a NUL byte stops it here
    except yaml.reader.ReaderError as error:
        raise _unreadable(text, error) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, {(): (1, 1)})
        _refuse_alias_bomb(node)
        duplicates = _find_duplicate_keys(node)
        if duplicates:
            raise duplicates[0]
        data = loader.construct_document(node)
    except RecursionError:
        # PyYAML composes nested collections recursively: find, without recursing, where
        # the nesting goes too deep.
        raise _too_deep(text) from None
    except yaml.reader.ReaderError as error:
        raise _unreadable(text, error) from None
    except yaml.MarkedYAMLError as error:
        raise _marked(text, error) from None
    except yaml.YAMLError as error:
        raise YamlProblem(1, 1, f"invalid YAML: {error}") from None
    finally:
        loader.dispose()
    positions: dict[tuple, Position] = {}
    _record_positions(node, (), positions)
    return YamlDocument(data, positions)


def _marked(text: str, error: yaml.MarkedYAMLError) -> YamlProblem:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or str(error)
    if "could not determine a constructor" in problem:
        problem = f"{problem} — object tags are not allowed; write plain values"
    context = error.context_mark
    if context is not None and mark is not None and mark.index >= len(text.rstrip()):
        # The text ended inside something left open (a quote, a bracket): that is where it
        # opened, not at the end of the file.
        return YamlProblem(context.line + 1, context.column + 1,
                           f"invalid YAML: {problem} {error.context} that starts here — close "
                           "it")
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return YamlProblem(line, column, f"invalid YAML: {problem}")


def _unreadable(text: str, error: yaml.reader.ReaderError) -> YamlProblem:
    """A character YAML does not allow (a NUL byte, other control characters), where it is."""
    before = text[:error.position]
    line = before.count("\n") + 1
    column = error.position - (before.rfind("\n") + 1) + 1
    return YamlProblem(line, column, f"the character U+{error.character:04X} is not allowed in "
                       "a storyboard (a control character: a damaged file, or binary data "
                       "pasted in) — delete it")


def _too_deep(text: str) -> YamlProblem:
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken,
                                  yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken)):
                depth += 1
                if depth > MAX_NESTING:
                    mark = token.start_mark
                    return YamlProblem(mark.line + 1, mark.column + 1,
                                       f"refused: values nested more than {MAX_NESTING} levels "
                                       "deep here — a storyboard needs a few; check the brackets")
            elif isinstance(token, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken,
                                    yaml.BlockEndToken)):
                depth -= 1
    except yaml.YAMLError:
        pass
    return YamlProblem(1, 1, f"refused: values nested more than {MAX_NESTING} levels deep — a "
                       "storyboard needs a few; check the brackets")


def locate(positions: dict[tuple, Position], path: tuple) -> Position:
    """Position of a field path, or of its nearest written parent."""
    while path:
        if path in positions:
            return positions[path]
        path = path[:-1]
    return positions.get((), (1, 1))


def _start(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _refuse_alias_bomb(root: yaml.Node) -> None:
    """Count nodes as if aliases were expanded, memoised per node so the count itself is cheap."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in in_progress:  # a recursive alias: refuse rather than recurse forever
            raise YamlProblem(*_start(node), "invalid YAML: an alias refers to itself")
        in_progress.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > MAX_EXPANDED_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total += size(key) + size(value)
                if total > MAX_EXPANDED_NODES:
                    break
        in_progress.discard(id(node))
        if total > MAX_EXPANDED_NODES:
            raise YamlProblem(
                *_start(node),
                f"refused: anchors and aliases here expand to more than {MAX_EXPANDED_NODES:,} "
                "values (an alias bomb) — write the values out or use fewer nested aliases",
            )
        sizes[id(node)] = total
        return total

    size(root)


def _find_duplicate_keys(root: yaml.Node) -> list[YamlProblem]:
    problems: list[YamlProblem] = []
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, yaml.Node] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in keys:
                        first = keys[key.value].start_mark.line + 1
                        problems.append(YamlProblem(
                            *_start(key),
                            f"duplicate key {key.value!r} (first written on line {first}) — "
                            "keep one of them",
                        ))
                    keys[key.value] = key
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    problems.sort(key=lambda p: (p.line, p.column))
    return problems


def _record_positions(node: yaml.Node, path: tuple, positions: dict[tuple, Position]) -> None:
    # A field points at its key (set by the caller), where the reader looks first.
    positions.setdefault(path, _start(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                child = path + (key.value,)
                positions.setdefault(child, _start(key))
                _record_positions(value, child, positions)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_positions(item, path + (index,), positions)
