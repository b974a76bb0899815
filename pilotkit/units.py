"""Parsing durations and sizes as people write them in specs."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)", re.IGNORECASE)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def unit_hint(value: str | int | float) -> str:
    """The message that refuses a duration written without a unit."""
    number = str(value).strip()
    return (
        f"{number} has no unit: write '{number}s' or '{number}m' "
        "(a bare number is seconds to some tools and minutes to sbatch)"
    )


def parse_duration(value: str | int | float, *, require_unit: bool = False) -> float:
    """Seconds from ``90``, ``"90s"``, ``"1h30m"``, ``"2d"``, ``"01:30:00"``, ``"1-12:00:00"``.

    With ``require_unit`` (spec files, command-line options) a bare number, ``90`` or
    ``"90"``, is refused with :func:`unit_hint`.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, (int, float)):
        if require_unit:
            raise ValueError(unit_hint(value))
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    if ":" in text:
        days = 0
        if "-" in text:
            day_text, text = text.split("-", 1)
            if not day_text.isdigit():
                raise ValueError(f"'{value}' is not a duration like 1-12:00:00")
            days = int(day_text)
        fields = text.split(":")
        if len(fields) > 3 or not all(f.isdigit() for f in fields):
            raise ValueError(f"'{value}' is not a duration like 01:30:00")
        seconds = 0
        for f in fields:
            seconds = seconds * 60 + int(f)
        if len(fields) == 2:  # MM:SS
            pass
        return float(days * 86400 + seconds)
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if require_unit:
            raise ValueError(unit_hint(text))
        if number < 0:
            raise ValueError("a duration cannot be negative")
        return number
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if text[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _UNITS[match.group(2).lower()]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"'{value}' is not a duration (use e.g. 90s, 10m, 1h30m, 01:30:00)")
    return total


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def slurm_time(seconds: float) -> str:
    """Slurm's ``D-HH:MM:SS`` (rounded up to whole seconds)."""
    total = int(-(-seconds // 1))
    d, rem = divmod(total, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(value: str | int) -> int:
    """Bytes from ``1024``, ``"512M"`` / ``"512MiB"`` (binary), ``"4GB"`` (decimal).

    Bare ``K/M/G/T`` are binary, as Slurm reads them.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"'{value}' is not a size (use e.g. 512M, 4GiB, 2GB)")
    number, prefix, binary, byte = match.groups()
    power = _POWERS[prefix.lower()]
    base = 1000 if (byte and not binary and prefix) else 1024
    return int(float(number) * base**power)


def format_size(nbytes: int | float | None) -> str:
    if nbytes is None:
        return "N/A"
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"
