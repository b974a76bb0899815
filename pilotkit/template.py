"""Command templates: ``str.format`` placeholders filled in, each value formatted with
its own format spec first (``{alpha:.3f}``) and, in a shell command, quoted for the
place it stands in (bare, inside ``'...'`` or inside ``"..."``), so a parameter value
can never become shell syntax. A placeholder where no quoting is safe (inside backticks
or a ``$(...)`` within double quotes) is refused by :func:`shell_problems`."""

from __future__ import annotations

import shlex
import string
from collections.abc import Iterator, Mapping
from typing import Any

_FORMATTER = string.Formatter()

BARE, SINGLE, DOUBLE, UNSAFE = "bare", "single", "double", "unsafe"
"""Where a placeholder stands in a shell command."""


class Field:
    """One placeholder of a template: ``{name.attr[0]!r:.3f}``."""

    __slots__ = ("conversion", "field", "spec")

    def __init__(self, field: str, spec: str, conversion: str | None) -> None:
        self.field = field
        self.spec = spec
        self.conversion = conversion

    @property
    def name(self) -> str:
        return self.field.split(".")[0].split("[")[0]

    @property
    def text(self) -> str:
        conv = f"!{self.conversion}" if self.conversion else ""
        spec = f":{self.spec}" if self.spec else ""
        return "{" + self.field + conv + spec + "}"

    def format(self, values: Mapping[str, Any]) -> str:
        """The field's value, converted and formatted; KeyError, ValueError, TypeError,
        IndexError or AttributeError when it cannot be."""
        obj, _ = _FORMATTER.get_field(self.field, (), values)
        obj = _FORMATTER.convert_field(obj, self.conversion)
        spec = _FORMATTER.vformat(self.spec, (), values) if "{" in self.spec else self.spec
        return format(obj, spec)


def parse(template: str) -> list[str | Field]:
    """Literal text and fields, in order; ValueError for a malformed template
    (a lone ``{`` or ``}``)."""
    out: list[str | Field] = []
    for literal, field, spec, conversion in _FORMATTER.parse(template):
        if literal:
            out.append(literal)
        if field is not None:
            if field == "" or field.isdigit():
                raise ValueError("positional placeholder '{}': name a parameter, as in '{alpha}'")
            out.append(Field(field, spec or "", conversion))
    return out


def fields(template: str) -> list[Field]:
    return [part for part in parse(template) if isinstance(part, Field)]


def render_token(template: str, values: Mapping[str, Any]) -> str:
    """A template with each field's formatted value (no quoting: one argv word)."""
    return "".join(part if isinstance(part, str) else part.format(values) for part in parse(template))


def render_shell(template: str, values: Mapping[str, Any]) -> str:
    """A shell command with each field's formatted value quoted for where it stands.
    ValueError where no quoting is safe (see :func:`shell_problems`)."""
    out: list[str] = []
    for part, where in _contexts(parse(template)):
        if isinstance(part, str):
            out.append(part)
            continue
        text = part.format(values)
        if where == BARE:
            out.append(shlex.quote(text))
        elif where == SINGLE:
            out.append(text.replace("'", "'\\''"))
        elif where == DOUBLE:
            out.append("".join("\\" + c if c in '\\"$`' else c for c in text))
        else:
            raise ValueError(f"placeholder {part.text} cannot be quoted safely where it stands")
    return "".join(out)


def shell_problems(template: str) -> list[str]:
    """Why fields of a shell template cannot be quoted safely (empty: all can)."""
    return [
        f"placeholder {part.text} is inside backticks or a $(...) within double quotes, where no "
        "quoting is safe: move it out (parameters are shell-quoted wherever they stand)"
        for part, where in _contexts(parse(template))
        if isinstance(part, Field) and where == UNSAFE
    ]


def _contexts(parts: list[str | Field]) -> Iterator[tuple[str | Field, str]]:
    """Each part with the shell quoting state at its start (a small POSIX sh lexer:
    quotes, backslashes, backticks and ``$(`` inside double quotes)."""
    state = BARE
    escaped = False
    backticks = False
    nested = 0  # depth of $( inside double quotes
    for part in parts:
        if isinstance(part, Field):
            yield part, UNSAFE if (backticks or nested) else state
            continue
        yield part, state
        prev = ""
        for char in part:
            if escaped:
                escaped = False
            elif state == SINGLE:
                if char == "'":
                    state = BARE
            elif char == "\\":
                escaped = True
            elif char == "`":
                backticks = not backticks
            elif state == DOUBLE:
                if char == "(" and prev == "$":
                    nested += 1
                elif char == ")" and nested:
                    nested -= 1
                elif char == '"' and not nested:
                    state = BARE
            elif char == "'":
                state = SINGLE
            elif char == '"':
                state = DOUBLE
            prev = char
