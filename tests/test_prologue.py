"""A profile's ``prologue`` lines (``module load ...``) on the real 3-node Slurm cluster:
what they set reaches the tasks on every node, and a failing line ends the run with one
line naming it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

SITE = """[profiles.cluster.provider]
type = "slurm"
callback_host = "{callback}"
prologue = [
    "source {setup}",
    "export PK_STACK=\\"$PK_STACK:second line\\"",
    {extra}
]

[profiles.cluster.resources]
nodes = 3
walltime = "5m"

[profiles.cluster.pilot]
workdir_root = "{root}"
"""

SPEC = """name = "prologue"
profile = "cluster"
[[app.groups]]
name = "g"
shell = true
command = "echo $PK_STACK on $(hostname)"
[app.groups.grid]
i = [1, 2, 3, 4, 5, 6]
"""


def run(tmp_path: Path, env: dict[str, str], extra: str = "") -> subprocess.CompletedProcess[str]:
    setup = tmp_path / "modules.sh"  # what `module load` does: change the environment
    setup.write_text('export PK_STACK="loaded"\n')
    site = tmp_path / "site.toml"
    site.write_text(
        SITE.format(
            callback=env["PILOTKIT_TESTCLUSTER_HOST_ADDR"], setup=setup, extra=extra, root=tmp_path / "runs"
        )
    )
    spec = tmp_path / "prologue.toml"
    spec.write_text(SPEC)
    env = {**env, "PILOTKIT_SITE_CONFIG": str(site), "XDG_CONFIG_HOME": str(tmp_path / "none")}
    env.pop("PILOTKIT_PROFILE", None)
    return subprocess.run(
        ["pilotkit", "run", str(spec), "--workdir", str(tmp_path / "w")],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_prologue_sets_up_every_node(slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path) -> None:
    out = run(tmp_path, {**cli_env, **slurm})
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [json.loads(line) for line in (tmp_path / "w" / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {r["outcome"] for r in lines} == {"ok"}
    seen = {Path(r["stdout"]).read_text().strip() for r in lines}
    assert {s.split(" on ")[0] for s in seen} == {"loaded:second line"}, seen
    assert {r["node"] for r in lines} == {"node1", "node2", "node3"}, "every node's agent inherited it"


def test_a_failing_prologue_line_is_named(
    slurm: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = run(tmp_path, {**cli_env, **slurm}, extra='"module load no-such-module",')
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pilotkit: prologue line 3 failed (module load no-such-module) with exit code 127" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "w" / "results.jsonl").exists() or not (tmp_path / "w" / "results.jsonl").read_text()
