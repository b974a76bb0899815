"""Bad spec input ends in one located line (file:line: key: what), exit 2, no traceback;
a shell template is safe by construction whatever a parameter value holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run, spec_file

HEAD = 'name = "s"\n[[app.groups]]\nname = "g"\n'

CASES = {
    "bad-format-spec": (
        HEAD + 'command = "echo {alpha:.q}"\ngrid = { alpha = [1.0, 2.0] }\n',
        4, "app.groups[0].command", "{alpha:.q} cannot format alpha = 1.0",
    ),
    "format-spec-wrong-type": (
        HEAD + 'command = "echo {p:.3f}"\ngrid = { p = [1.5, "x"] }\n',
        4, "app.groups[0].command", "{p:.3f} cannot format p = 'x'",
    ),
    "placeholder-in-commands": (
        HEAD + 'commands = ["echo {task_id}", "echo {x}"]\n',
        4, "app.groups[0].commands[1]", "unknown placeholder '{x}'; 'commands' take no parameters",
    ),
    "lone-brace": (
        HEAD + 'commands = ["echo {"]\n',
        4, "app.groups[0].commands[0]", "bad template",
    ),
    "unclosed-quote": (
        HEAD + "command = \"echo 'x {p}\"\ngrid = { p = [1] }\n",
        4, "app.groups[0].command", "bad template: No closing quotation",
    ),
    "backticks-in-shell": (
        HEAD + 'shell = true\ncommand = "echo `echo {p}`"\ngrid = { p = [1] }\n',
        5, "app.groups[0].command", "inside backticks",
    ),
    "empty-commands": (HEAD + "commands = []\n", 4, "app.groups[0].commands", "empty list"),
    "empty-grid": (
        HEAD + 'command = "echo {p}"\ngrid = { p = [] }\n', 5, "app.groups[0].grid.p", "empty list of values",
    ),
    "walltime-zero": (
        'name = "s"\n[resources]\nwalltime = "0s"\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n',
        3, "resources.walltime", "must be more than 0",
    ),
    "time-limit-zero": (
        HEAD + 'commands = ["true"]\ntime_limit = "0s"\n', 5, "app.groups[0].time_limit", "must be more than 0",
    ),
    "gpus-more-than-a-node-has": (
        'name = "s"\n[resources]\ngpus = 0\n[[app.groups]]\nname = "g"\ncommands = ["true"]\ngpus = 64\n',
        7, "app.groups[0].gpus", "a task asks for 64 GPUs, a node has 0",
    ),
    "gpus-more-than-visible": (  # resources.gpus unset: every visible GPU, counted
        HEAD + 'commands = ["true"]\ngpus = 64\n', 5, "app.groups[0].gpus", "a task asks for 64 GPUs, a node has",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_is_one_located_line_exit_2(
    case: str, tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    body, line, key, message = CASES[case]
    spec = spec_file(tmp_path, body)
    out = run(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {spec}:{line}: {key}: "), lines[0]
    assert message in lines[0]
    as_json = json.loads(run(pilotkit_cmd, cli_env, "validate", "--json", str(spec)).stdout)
    assert [(p["key"], p["line"]) for p in as_json["problems"]] == [(key, line)]
    ran = run(pilotkit_cmd, cli_env, "run", "-q", "--workdir", str(tmp_path / "wd"), str(spec))
    assert ran.returncode == 2, ran.stderr
    assert "Traceback" not in ran.stderr


def test_spec_not_utf8_is_located(tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]) -> None:
    spec = tmp_path / "latin1.toml"
    spec.write_bytes(b'name = "s"\n# caf\xe9\n[[app.groups]]\nname = "g"\ncommands = ["true"]\n')
    for command in ("validate", "run"):
        out = run(pilotkit_cmd, cli_env, command, str(spec))
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [
            f"error: {spec}:2: not UTF-8 text: byte 0xe9 cannot be decoded; save the file as UTF-8"
        ]


def test_unknown_placeholder_named_once_and_task_count(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = spec_file(tmp_path, HEAD + 'command = "echo {nope} {nope} {nope} {nope}"\n')
    out = run(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    big = spec_file(
        tmp_path,
        HEAD + 'command = "echo {a} {b}"\ngrid = { a = [1, 2, 3], b = [4, 5] }\n'
        '[[app.groups]]\nname = "h"\ncommands = ["true", "false"]\n',
        "ok.toml",
    )
    out = run(pilotkit_cmd, cli_env, "validate", str(big))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(", 8 tasks")


def test_shell_format_spec_and_quoting_safe_by_construction(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """The README's {alpha:.3f} with shell = true runs; a value cannot escape its quotes,
    bare, in '...' or in "..."."""
    marker = tmp_path / "pwned"
    evil = [f"$(touch {marker})", f"`touch {marker}`", f"x'; touch {marker}; '", f'x"; touch {marker}; "']
    spec = spec_file(
        tmp_path,
        HEAD
        + "shell = true\n"
        + """command = '''printf "%s|%s|%s|%s\\n" {alpha:.3f} {p} "{p}" '{p}' > out.txt'''\n"""
        + f"grid = {{ alpha = [0.5], p = {json.dumps(evil)} }}\n",
    )
    out = run(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 0, out.stderr
    wd = tmp_path / "wd"
    ran = run(pilotkit_cmd, cli_env, "run", "-q", "--workdir", str(wd), str(spec))
    assert ran.returncode == 0, ran.stderr
    assert not marker.exists()
    got = sorted((wd / "tasks" / f"g-{i}" / "out.txt").read_text() for i in range(len(evil)))
    assert got == sorted(f"0.500|{v}|{v}|{v}\n" for v in evil)
