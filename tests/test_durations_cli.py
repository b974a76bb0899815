"""A duration written without a unit: refused in spec files and on the command line,
with the file, line and key, and the hint to add a unit."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run(cmd: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120)


def test_bare_duration_in_spec_is_a_located_error(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    spec = tmp_path / "bare.toml"
    spec.write_text(
        'name = "bare"\n[resources]\nwalltime = "90"\n[pilot]\ngrace = 5\ndrain_margin = "30s"\n'
        '[[app.groups]]\nname = "g"\ncommand = "true"\ntime_limit = 30\n'
    )
    out = run(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 2
    assert sorted(out.stderr.strip().splitlines()) == [
        f"error: {spec}:10: app.groups[0].time_limit: 30 has no unit: write '30s' or '30m' "
        "(a bare number is seconds to some tools and minutes to sbatch)",
        f"error: {spec}:3: resources.walltime: 90 has no unit: write '90s' or '90m' "
        "(a bare number is seconds to some tools and minutes to sbatch)",
        f"error: {spec}:5: pilot.grace: 5 has no unit: write '5s' or '5m' "
        "(a bare number is seconds to some tools and minutes to sbatch)",
    ]  # fmt: skip
    assert "Traceback" not in out.stderr
    out = run(pilotkit_cmd, cli_env, "run", "--quiet", "--workdir", str(tmp_path / "w"), str(spec))
    assert out.returncode == 2
    assert "resources.walltime: 90 has no unit" in out.stderr
    assert not (tmp_path / "w").exists()


def test_bare_duration_option_is_refused(
    pilotkit_cmd: list[str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = run(pilotkit_cmd, cli_env, "run", "--progress-interval", "30", str(tmp_path / "none.toml"))
    assert out.returncode == 2
    assert "--progress-interval': 30 has no unit: write '30s' or '30m'" in out.stderr
    assert "Traceback" not in out.stderr
    out = run(pilotkit_cmd, cli_env, "run", "--progress-interval", "0s", str(tmp_path / "none.toml"))
    assert out.returncode == 2
    assert "--progress-interval': 0s is too short: at least 0.1s" in out.stderr


def test_a_bare_walltime_of_a_slurm_pilot_is_one_line(
    tmp_path: Path, pilotkit_cmd: list[str], cli_env: dict[str, str]
) -> None:
    """The issue's case: ``walltime = "90"`` for sbatch. The walltime is refused once, for
    its missing unit, not again as missing."""
    spec = tmp_path / "slurm.toml"
    spec.write_text(
        'name = "s"\n[provider]\ntype = "slurm"\n[resources]\nwalltime = "90"\n'
        '[[app.groups]]\nname = "g"\ncommand = "true"\n'
    )
    out = run(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 2
    assert out.stderr == (
        f"error: {spec}:5: resources.walltime: 90 has no unit: write '90s' or '90m' "
        "(a bare number is seconds to some tools and minutes to sbatch)\n"
    )
    spec.write_text(spec.read_text().replace('walltime = "90"\n', ""))
    out = run(pilotkit_cmd, cli_env, "validate", str(spec))
    assert out.returncode == 2
    assert out.stderr == f"error: {spec}:4: resources.walltime: a Slurm pilot needs a walltime\n"
