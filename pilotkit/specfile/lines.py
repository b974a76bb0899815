"""Line numbers of the keys of a TOML text, for problems that name file:line."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-\.]+)\s*=""")


@dataclass(frozen=True)
class Origin:
    """Where a value from another file was set: the file, its line, and the prefix of the
    key there (``profiles.NAME.``)."""

    file: str
    line: int | None
    prefix: str = ""


class KeyLines:
    """Maps dotted keys (``app.groups[1].cores``) to the line that sets them.

    A light scan of the TOML text: table headers, arrays of tables and ``key =`` lines.
    Keys inside inline tables resolve to the line of their parent key.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        self.origins: dict[str, Origin] = {}
        """Keys whose value came from another file (a profile): where they were set."""
        counts: dict[str, int] = {}
        table = ""
        for lineno, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                name = ".".join(_unquote(p) for p in header.group(2).split("."))
                # Parent arrays of tables: resolve to their latest element.
                name = self._with_indexes(name, counts)
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    table = f"{name}[{index}]"
                else:
                    table = name
                self.lines.setdefault(table, lineno)
                continue
            key = _KEY.match(line)
            if key:
                dotted = ".".join(_unquote(p) for p in key.group(1).split("."))
                full = f"{table}.{dotted}" if table else dotted
                self.lines.setdefault(full, lineno)

    def _with_indexes(self, name: str, counts: dict[str, int]) -> str:
        parts = name.split(".")
        out: list[str] = []
        for part in parts[:-1]:
            out.append(part)
            joined = ".".join(out)
            if joined in counts:
                out[-1] = f"{part}[{counts[joined] - 1}]"
        out.append(parts[-1])
        return ".".join(out)

    def where(self, dotted: str) -> tuple[str | None, str, int | None]:
        """The file (None: this text), the key as written there, and the line of a key
        or of its nearest parent."""
        key = dotted
        while key:
            if key in self.lines:
                return None, dotted, self.lines[key]
            origin = self.origins.get(key)
            if origin is not None:
                return origin.file, origin.prefix + dotted, origin.line
            cut = max(key.rfind("."), key.rfind("["))
            if cut <= 0:
                break
            key = key[:cut]
        return None, dotted, None

    def find(self, dotted: str) -> int | None:
        key = dotted
        while key:
            if key in self.lines:
                return self.lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            if cut <= 0:
                break
            key = key[:cut]
        return self.lines.get(key) if key else None


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part
