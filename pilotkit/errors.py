"""One error hierarchy for pilotkit.

A :class:`PilotkitError` is a *user* error: the CLI prints its one-line message to
stderr and exits with code 2, without a traceback. Anything else that escapes is an
internal error: exit code 1 and a pointer to the log file.
"""

from __future__ import annotations


class PilotkitError(Exception):
    """A problem the user can fix: bad spec, missing binary, unreachable host."""

    exit_code = 2

    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.title = title

    def __str__(self) -> str:
        return self.message


class SpecError(PilotkitError):
    """A pilot spec is invalid; carries every problem found."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        lines = dict.fromkeys(p.format() for p in problems)  # each once, in order
        super().__init__("\n".join(lines), title="invalid spec")


class SpecProblem:
    """One problem in a spec file: where it is and what is wrong."""

    __slots__ = ("file", "key", "line", "message", "suggestion")

    def __init__(
        self,
        key: str,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.file = file
        self.key = key
        self.line = line
        self.message = message
        self.suggestion = suggestion

    def format(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        if self.suggestion:
            text += f" (did you mean '{self.suggestion}'?)"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "key": self.key,
            "line": self.line,
            "message": self.message,
            "suggestion": self.suggestion,
        }


class MissingBinaryError(PilotkitError):
    """A program pilotkit needs is not installed."""

    def __init__(self, binary: str, purpose: str) -> None:
        super().__init__(f"'{binary}' not found on PATH (needed for {purpose})", title="missing binary")
        self.binary = binary


class PluginError(PilotkitError):
    """An unknown plugin id, or a plugin that failed to load."""


class CommandError(PilotkitError):
    """An external command failed; carries argv, exit code and output."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        detail = (stderr or stdout).strip().splitlines()
        last = detail[-1] if detail else "no output"
        super().__init__(f"'{argv[0]}' exited with {returncode}: {last}", title="command failed")
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
