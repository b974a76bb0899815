"""The ``[campaign]`` table: typed, checked against the rest of the spec, every problem
located by file, line and key (exit 2 from the command)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pilotkit.errors import SpecError
from pilotkit.plugins import Plugins
from pilotkit.spec import parse_spec

BASE = """name = "scan"
[resources]
cores = 1
walltime = "10s"
[pilot]
drain_margin = "2s"
[[app.groups]]
name = "g"
commands = ["true"]
"""


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins().load()


def problems(text: str, plugins: Plugins) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.toml", plugins)
    return [p.format() for p in info.value.problems]


def test_campaign_table_is_typed_with_defaults(plugins: Plugins) -> None:
    spec = parse_spec(BASE + "[campaign]\nmax_allocations = 5\nparallel = 2\nidle_timeout = \"3s\"\n",
                      "spec.toml", plugins).spec  # fmt: skip
    assert spec.campaign is not None
    assert (spec.campaign.max_allocations, spec.campaign.parallel, spec.campaign.idle_timeout) == (5, 2, "3s")
    assert spec.campaign.pause_after == 10 and spec.campaign.backlog_per_allocation == 0
    assert spec.campaign.checkpoint_signal == "SIGUSR1"
    assert parse_spec(BASE, "spec.toml", plugins).spec.campaign is None


def test_bad_campaign_values_name_file_line_and_key(plugins: Plugins) -> None:
    text = BASE + (
        "[campaign]\n"
        "max_allocations = 0\n"  # line 11
        'idle_timeout = "90"\n'
        "paralel = 2\n"
        'pause_after = "ten"\n'
        'checkpoint_signal = "SIGNOPE"\n'
    )
    assert problems(text, plugins) == [
        "spec.toml:11: campaign.max_allocations: expected an integer >= 1",
        "spec.toml:12: campaign.idle_timeout: 90 has no unit: write '90s' or '90m' (a bare number is seconds "
        "to some tools and minutes to sbatch)",
        "spec.toml:13: campaign.paralel: unknown key (did you mean 'parallel'?)",
        "spec.toml:14: campaign.pause_after: expected an integer, got a string",
        "spec.toml:15: campaign.checkpoint_signal: 'SIGNOPE' is not a signal name (SIGUSR1, SIGINT...)",
    ]


def test_campaign_needs_what_each_allocation_can_hold(plugins: Plugins) -> None:
    text = BASE.replace('walltime = "10s"\n', "").replace('commands = ["true"]', 'commands = ["true"]\ntime_limit = "1m"')
    text += "[campaign]\nmax_allocations = 2\nparallel = 3\n"
    assert problems(text, plugins) == [
        "spec.toml:10: campaign: a campaign needs resources.walltime (the length of each allocation)",
        "spec.toml:12: campaign.parallel: 3 allocations at once is more than max_allocations = 2",
    ]
    long_task = BASE.replace('commands = ["true"]', 'commands = ["true"]\ntime_limit = "9s"') + "[campaign]\n"
    assert problems(long_task, plugins) == [
        "spec.toml:10: app.groups[0].time_limit: longer than an allocation's walltime less "
        "pilot.drain_margin (8s): no allocation could run it",
    ]


def test_a_search_group_is_refused_in_a_campaign(plugins: Plugins) -> None:
    search = BASE.replace('commands = ["true"]', 'command = "true {x}"') + (
        '[app.groups.search]\ntrials = 4\nobjective = "loss"\n[app.groups.search.params]\nx = { uniform = [0, 1] }\n'
    )
    assert problems(search + "[campaign]\n", plugins) == [
        "spec.toml:10: app.groups[0].search: an adaptive search does not run in a campaign yet (its study "
        "would need one sampler for all the allocations): run it as one pilot, without [campaign]",
    ]
    assert parse_spec(search, "spec.toml", plugins).spec.campaign is None, "without [campaign] it runs"


def test_validate_exits_2_with_one_line_per_problem(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = tmp_path / "big-scan.toml"
    spec.write_text(BASE + "[campaign]\nparallel = -1\n")
    out = subprocess.run([*pilotkit_cmd, "validate", str(spec)], env=cli_env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: {spec}:11: campaign.parallel: expected an integer >= 1"]
    run = subprocess.run([*pilotkit_cmd, "run", str(spec)], env=cli_env, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"{spec}:11: campaign.parallel" in run.stderr
