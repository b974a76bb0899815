"""The daemon does not run campaigns yet: submitting one is refused in one line, exit 2,
rather than run as a single pilot that would ignore its [campaign] table."""

from __future__ import annotations

from pathlib import Path

from .conftest import DaemonProcess


def test_submitting_a_campaign_is_refused_in_one_line(daemon: DaemonProcess, tmp_path: Path) -> None:
    spec = tmp_path / "big-scan.toml"
    spec.write_text('name = "big-scan"\n[resources]\nwalltime = "1m"\n[campaign]\n'
                    '[[app.groups]]\nname = "g"\ncommands = ["true"]\n')  # fmt: skip
    result = daemon.cli("submit", str(spec), check=False)
    assert result.returncode == 2
    assert result.stderr == ("error: a spec with [campaign] runs with 'pilotkit run' only: the daemon does not "
                             "run campaigns yet\n")  # fmt: skip
