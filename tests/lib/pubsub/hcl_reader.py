"""A small reader for the HCL subset terraform/*.tf uses: blocks, `key = value` lines, nested blocks.

python-hcl2 would do this properly but is not a dependency; this reads just enough for the parity
tests: `resource`, `variable` and `data` blocks with their scalar attributes and nested blocks
(lists, maps and function calls are kept as raw text). Quoted strings may contain braces.
"""

from __future__ import annotations

import re
from typing import Any

_BLOCK_HEADER = re.compile(r'^\s*(resource|data|variable|output|locals)\s*((?:"[^"]*"\s*)*)\{', re.M)
_ATTRIBUTE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(.+?)\s*$")
_NESTED_BLOCK = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\{\s*$")


def read_blocks(text: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """Top-level blocks keyed by (kind, *labels), e.g. ("resource", "google_pubsub_topic", "market_data")."""
    text = _strip_comments(text)
    blocks: dict[tuple[str, ...], dict[str, Any]] = {}
    for match in _BLOCK_HEADER.finditer(text):
        labels = tuple(re.findall(r'"([^"]*)"', match.group(2)))
        body = text[match.end() : _matching_brace(text, match.end() - 1)]
        blocks[(match.group(1), *labels)] = _read_body(body.splitlines())
    return blocks


def _read_body(lines: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        nested = _NESTED_BLOCK.match(line)
        if nested:
            end = _block_end(lines, index)
            body[nested.group(1)] = _read_body(lines[index + 1 : end])
            index = end + 1
            continue
        attribute = _ATTRIBUTE.match(line)
        if attribute:
            value = attribute.group(2)
            if _depth(value) > 0:  # a multi-line list/map/call: keep the raw text
                end = _block_end(lines, index)
                value = "\n".join([value, *lines[index + 1 : end + 1]])
                index = end
            body[attribute.group(1)] = _scalar(value)
        index += 1
    return body


def _scalar(raw: str) -> Any:
    if re.fullmatch(r'"[^"]*"', raw):
        return raw[1:-1]
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "null":
        return None
    return raw  # a reference or expression, e.g. google_pubsub_topic.market_data.id


def _depth(text: str) -> int:
    """Net count of unquoted opening brackets in `text`."""
    depth, in_string = 0, False
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            in_string = not in_string
        elif not in_string and char in "{[(":
            depth += 1
        elif not in_string and char in "}])":
            depth -= 1
    return depth


def _block_end(lines: list[str], start: int) -> int:
    """Index of the line that closes the brackets opened on line `start`."""
    depth = 0
    for index in range(start, len(lines)):
        depth += _depth(lines[index])
        if depth <= 0:
            return index
    raise ValueError(f"unbalanced block starting at line {start + 1}: {lines[start]!r}")


def _matching_brace(text: str, open_index: int) -> int:
    depth, in_string = 0, False
    for index in range(open_index, len(text)):
        char = text[index]
        if char == '"' and text[index - 1] != "\\":
            in_string = not in_string
        elif not in_string and char == "{":
            depth += 1
        elif not in_string and char == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unbalanced braces from offset {open_index}")


def _strip_comments(text: str) -> str:
    # Whole-line comments only: a '#' or '//' inside a string value stays untouched.
    return "\n".join("" if re.match(r"^\s*(#|//)", line) else line for line in text.splitlines())
