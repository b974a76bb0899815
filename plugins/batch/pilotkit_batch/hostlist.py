"""Slurm's compressed host lists: ``node[1-3,5]``, ``gpu[01-12]``, ``a[1-2]b[3-4]``.

:func:`expand` turns such an expression into host names, in the order Slurm lists them
(the first bracket varies slowest); :func:`compress` does the reverse for a list of host
names, keeping their order and repetitions, so that ``expand(compress(hosts)) == hosts``.

Zero padding follows the start of each range: ``[01-12]`` gives ``01 .. 12``; ``[8-10]``
gives ``8, 9, 10``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

MAX_HOSTS = 1_000_000
"""Expanding more names than this is refused (a typo such as ``n[1-100000000]``)."""

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")
_FORBIDDEN = re.compile(r"[\[\],\s]")


def expand(expression: str, *, max_hosts: int = MAX_HOSTS) -> list[str]:
    """The host names in ``expression``.

    :param expression: e.g. ``"node[1-2],login1"``; empty or blank gives ``[]``.
    :raises ValueError: unbalanced brackets, a malformed or descending range, or more
        than ``max_hosts`` names.
    """
    hosts: list[str] = []
    for item in _split_top_level(expression):
        item = item.strip()
        if not item:
            continue
        parts = _parse_item(item, expression)
        count = 1
        for part in parts:
            count *= len(part)
        if len(hosts) + count > max_hosts:
            raise ValueError(f"host list '{expression}' names more than {max_hosts} hosts")
        hosts.extend("".join(combo) for combo in itertools.product(*parts))
    return hosts


def compress(hosts: Iterable[str]) -> str:
    """Slurm's compressed form of ``hosts``, order and repetitions kept.

    Neighbouring names that differ only in their last number share one bracket:
    ``["n1", "n2", "n3", "n5"]`` gives ``"n[1-3,5]"``.

    :raises ValueError: a name that is empty or contains ``[``, ``]``, ``,`` or whitespace.
    """
    items: list[str] = []
    group_key: tuple[str, str] | None = None
    numbers: list[str] = []

    def flush() -> None:
        if group_key is None:
            return
        prefix, suffix = group_key
        if len(numbers) == 1:
            items.append(f"{prefix}{numbers[0]}{suffix}")
        else:
            items.append(f"{prefix}[{','.join(_ranges(numbers))}]{suffix}")

    for host in hosts:
        if not host or _FORBIDDEN.search(host):
            raise ValueError(f"'{host}' cannot be part of a host list")
        match = _LAST_NUMBER.match(host)
        if match is None:
            flush()
            group_key, numbers = None, []
            items.append(host)
            continue
        key = (match.group(1), match.group(3))
        if key != group_key:
            flush()
            group_key, numbers = key, []
        numbers.append(match.group(2))
    flush()
    return ",".join(items)


# ------------------------------------------------------------------------ helpers


def _split_top_level(expression: str) -> Iterator[str]:
    """Split on the commas that are outside brackets."""
    depth = 0
    start = 0
    for i, char in enumerate(expression):
        if char == "[":
            depth += 1
            if depth > 1:
                raise ValueError(f"host list '{expression}': nested '['")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"host list '{expression}': ']' without '['")
        elif char == "," and depth == 0:
            yield expression[start:i]
            start = i + 1
    if depth:
        raise ValueError(f"host list '{expression}': '[' without ']'")
    yield expression[start:]


def _parse_item(item: str, expression: str) -> list[list[str]]:
    """One comma-free item as a list of alternatives per position (literal or bracket)."""
    parts: list[list[str]] = []
    for piece in re.split(r"(\[[^\]]*\])", item):
        if not piece:
            continue
        if piece.startswith("["):
            parts.append(_parse_bracket(piece[1:-1], expression))
        else:
            parts.append([piece])
    return parts


def _parse_bracket(body: str, expression: str) -> list[str]:
    values: list[str] = []
    for element in body.split(","):
        match = _RANGE.match(element.strip())
        if match is None:
            raise ValueError(f"host list '{expression}': '{element}' is not a number or a range like 1-4")
        first, last = match.group(1), match.group(2)
        if last is None:
            values.append(first)
            continue
        lo, hi = int(first), int(last)
        if hi < lo:
            raise ValueError(f"host list '{expression}': range '{element}' goes down")
        if hi - lo >= MAX_HOSTS:
            raise ValueError(f"host list '{expression}': range '{element}' is too long")
        width = len(first)
        values.extend(f"{n:0{width}d}" for n in range(lo, hi + 1))
    return values


def _ranges(numbers: list[str]) -> Iterator[str]:
    """Consecutive runs of ``numbers`` (digit strings) as ``a-b`` or ``a``, in order."""
    start = numbers[0]
    previous = start
    width = len(start)
    for text in numbers[1:]:
        if int(text) == int(previous) + 1 and f"{int(text):0{width}d}" == text:
            previous = text
            continue
        yield start if start == previous else f"{start}-{previous}"
        start = previous = text
        width = len(start)
    yield start if start == previous else f"{start}-{previous}"
