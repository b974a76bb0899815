"""Checking TOML data against msgspec Structs, recording every problem with its file,
dotted key, line and the nearest valid key. Used for the core sections and, in the
resolve step, for each plugin's own options."""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Annotated, Any

import msgspec

from ..errors import SpecProblem
from ..units import parse_duration, parse_size
from .lines import KeyLines


class Checker:
    """Collects the problems of one spec file. Tables are mended as they are checked:
    a bad optional key is reported and dropped, so later checks still run."""

    def __init__(self, fname: str, lines: KeyLines) -> None:
        self.fname = fname
        self.lines = lines
        self.problems: list[SpecProblem] = []
        self.fatal = False
        """A problem that stops resolution (a missing required key, an unknown plugin)."""

    def problem(self, key: str, message: str, suggestion: str | None = None, *, fatal: bool = True) -> None:
        self.fatal = self.fatal or fatal
        file, shown, line = self.lines.where(key)
        self.problems.append(SpecProblem(shown, message, file=file or self.fname, line=line, suggestion=suggestion))

    def check_struct(
        self, cls: Any, data: Any, prefix: str, extra_known: set[str] | frozenset[str] = frozenset()
    ) -> None:
        """Check ``data`` against struct ``cls``, recording every problem."""
        if not isinstance(data, dict):
            self.problem(prefix, f"expected a table, got {tname(data)}")
            return
        fields = {f.name: f for f in msgspec.structs.fields(cls)}
        known = sorted(set(fields) | set(extra_known))
        for key, value in list(data.items()):
            dotted = f"{prefix}.{key}" if prefix else key
            field = fields.get(key)
            if field is None:
                if key in extra_known:
                    continue
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                self.problem(dotted, "unknown key", suggestion=close[0] if close else None, fatal=False)
                del data[key]
                continue
            if not self.check_value(field.type, value, dotted) and not field.required:
                del data[key]  # reported; carry on with the default
        for name, field in fields.items():
            if field.required and name not in data:
                self.problem(f"{prefix}.{name}" if prefix else name, "required key is missing")

    def check_value(self, tp: Any, value: Any, dotted: str) -> bool:
        """Record the problems of one value; False when it is unusable as it stands.
        Tables are mended in place (their bad optional keys dropped)."""
        struct = _struct_of(tp)
        if struct is not None and isinstance(value, dict):
            # A table whose own required keys are bad cannot be built: fatal.
            self.check_struct(struct, value, dotted)
            return True
        item = _list_struct_of(tp)
        if item is not None and isinstance(value, list):
            for i, element in enumerate(value):
                self.check_value(item, element, f"{dotted}[{i}]")
            return True
        try:
            msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            self.problem(dotted, _clean(str(exc)), fatal=False)
            return False
        unit = _unit_of(tp)
        if unit is not None and value is not None:
            try:
                if unit == "duration":
                    parse_duration(value, require_unit=True)
                else:
                    parse_size(value)
            except ValueError as exc:
                self.problem(dotted, str(exc), fatal=False)
                return False
        return True


def tname(value: Any) -> str:
    """How a problem names the type of a TOML value."""
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
    }.get(type(value), type(value).__name__)


_TYPE_WORDS = {
    "int": "an integer",
    "str": "a string",
    "float": "a number",
    "bool": "a boolean",
    "array": "an array",
    "object": "a table",
    "null": None,
}


def _clean(message: str) -> str:
    message = re.sub(r" - at `\$[^`]*`$", "", message)
    match = re.fullmatch(
        r"Expected `([^`]*)`(?P<bound>(?: [<>]=? [^,]+)*)(?:, got `(?P<got>[^`]*)`)?", message
    )
    if match:
        wanted = [_TYPE_WORDS.get(t.strip(), t.strip()) for t in match.group(1).split("|")]
        words = " or ".join(w for w in wanted if w) + (match.group("bound") or "")
        if match.group("got") is None:
            return f"expected {words}"
        got = _TYPE_WORDS.get(match.group("got"), match.group("got")) or "nothing"
        return f"expected {words}, got {got}"
    return message.replace("`", "'")


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_args(tp: Any) -> tuple[Any, ...]:
    tp = _strip_annotated(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType"):
        return typing.get_args(tp)
    if isinstance(tp, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _struct_of(tp: Any) -> Any:
    for arg in _union_args(tp):
        arg = _strip_annotated(arg)
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
    return None


def _list_struct_of(tp: Any) -> Any:
    for arg in _union_args(tp):
        arg = _strip_annotated(arg)
        if typing.get_origin(arg) is list:
            (item,) = typing.get_args(arg)
            if _struct_of(item) is not None:
                return item
    return None


def _unit_of(tp: Any) -> str | None:
    candidates = [tp]
    if typing.get_origin(tp) is not Annotated:
        candidates += list(typing.get_args(tp))
    for arg in candidates:
        if typing.get_origin(arg) is Annotated:
            for meta in typing.get_args(arg)[1:]:
                if isinstance(meta, msgspec.Meta) and meta.extra and "pilotkit" in meta.extra:
                    return str(meta.extra["pilotkit"])
    return None
