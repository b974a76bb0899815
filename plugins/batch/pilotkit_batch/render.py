"""Rendering job-script templates: data files, strict substitution, every value quoted.

Templates live in ``pilotkit_batch/templates`` and use :class:`string.Template`
placeholders (``${name}``; a literal dollar is ``$$``). :func:`render` insists that the
placeholders and the values given match exactly, ``shlex.quote``\\ s every scalar value,
``shlex.join``\\ s every argv, and takes *blocks*: lines of optional directives, each
built by :func:`directive` (which quotes its value). A block with no lines removes its
placeholder's line.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources

Value = str | int | Sequence[str]

_EMPTY_BLOCK = "\x00empty-block\x00"


@cache
def load_template(name: str) -> string.Template:
    """The template ``templates/<name>`` shipped with this package."""
    text = resources.files("pilotkit_batch").joinpath("templates", name).read_text(encoding="utf-8")
    return string.Template(text)


def quote_value(key: str, value: Value, *, shell_only: bool = False) -> str:
    """``value`` quoted for a shell and for a ``#SBATCH``-style directive line.

    :param shell_only: the value goes to the shell only, not a directive line.
    :raises ValueError: a scalar holding a line break or NUL, which no directive line can
        carry, or (unless ``shell_only``) a backslash, which sbatch and its kin read as an
        escape even inside quotes.
    """
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value or "\x00" in value:
            raise ValueError(f"{key}: a line break or NUL cannot go into a job script: {value!r}")
        if "\\" in value and not shell_only:
            raise ValueError(f"{key}: a backslash cannot go into a job script directive: {value!r}")
        return shlex.quote(value)
    argv = list(value)
    if any("\x00" in arg for arg in argv):
        raise ValueError(f"{key}: NUL cannot go into a job script")
    return shlex.join(argv)


def directive(prefix: str, option: str, value: str | int | None = None, sep: str = "=") -> str:
    """One directive line: ``directive("#SBATCH", "--mem", "4G")`` gives ``#SBATCH --mem=4G``.

    The value is quoted with :func:`quote_value`; without one, only the option is written.
    A prefix that does not start with ``#`` (such as ``export``) is a shell line.
    """
    if value is None:
        return f"{prefix} {option}"
    shell_only = not prefix.startswith("#")
    return f"{prefix} {option}{sep}{quote_value(option, value, shell_only=shell_only)}"


def render(
    template: str | string.Template,
    values: Mapping[str, Value],
    blocks: Mapping[str, Sequence[str]] | None = None,
    *,
    quote: Callable[[str, Value], str] | None = None,
) -> str:
    """Fill ``template`` (a file name under ``templates/`` or a Template).

    :param values: scalars (quoted) and argv lists (joined) for the placeholders.
    :param blocks: pre-built lines (see :func:`directive`) for block placeholders.
    :param quote: how to quote values (default :func:`quote_value`); for files that are
        not shell scripts, such as HTCondor submit descriptions.
    :raises KeyError: a placeholder with no value.
    :raises ValueError: a value for no placeholder, or a value that cannot be quoted.
    """
    tmpl = load_template(template) if isinstance(template, str) else template
    blocks = blocks or {}
    overlap = set(values) & set(blocks)
    if overlap:
        raise ValueError(f"given both as a value and a block: {', '.join(sorted(overlap))}")
    wanted = set(tmpl.get_identifiers())
    given = set(values) | set(blocks)
    unused = given - wanted
    if unused:
        raise ValueError(f"the template has no placeholder for: {', '.join(sorted(unused))}")
    quote = quote or quote_value
    mapping = {key: quote(key, value) for key, value in values.items()}
    for key, lines in blocks.items():
        mapping[key] = "\n".join(lines) if lines else _EMPTY_BLOCK
    text = tmpl.substitute(mapping)
    kept = [line for line in text.split("\n") if line != _EMPTY_BLOCK]
    return "\n".join(kept)
