"""The scan example inside a real container image (busybox) with runc: on the local
default, and across the nodes of the Slurm test cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotkit.states import PilotState
from pilotkit.testing import need, need_binary
from pilotkit.testing.plugin import RunSpec

from .conftest import EXAMPLES

pytestmark = pytest.mark.runc


@pytest.fixture(scope="module")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_binary("runc", "install with share/dev/install-system-deps")
    need("/bin/busybox (Debian busybox-static)", Path("/bin/busybox").exists())
    try:
        from pilotkit_oci.busybox import build_busybox_rootfs
    except ImportError:
        need("the pilotkit-oci plugin", False, "pip install -e plugins/oci")
        raise
    return build_busybox_rootfs(tmp_path_factory.mktemp("image") / "busybox")


def container_spec(image: Path, extra: str = "") -> str:
    text = (EXAMPLES / "scan-container.toml").read_text().replace("/tmp/pilotkit-busybox", str(image))
    text = text.replace('runtime = "oci"', 'runtime = "oci"\nbinds = ["/etc/hostname:/host-hostname:ro"]')
    # Prove each task ran in the image: no host python there, the bind is, env arrives.
    text += (
        '\n[[app.groups]]\nname = "inside"\nshell = true\n'
        'commands = ["test ! -e /usr/bin/python3 && test -r /host-hostname && echo inside $PK_MARK"]\n'
        '\n[env]\nPK_MARK = "marked"\n'
    )
    return extra + text


async def test_scan_runs_in_busybox_with_runc(busybox_image: Path, run_spec: RunSpec) -> None:
    run = await run_spec(container_spec(busybox_image))
    assert run.state is PilotState.DONE, run.reason
    results = {r.task: r for r in run.results()}
    assert len(results) == 10 and {r.status for r in results.values()} == {"ok"}
    assert Path(results["inside-0"].stdout).read_text() == "inside marked\n"
    metric = (run.workdir / "tasks" / "grid-5" / "metric.txt").read_text()
    assert metric == "power=2 steps=1000 error=8.33e-08\n"


@pytest.mark.slurm
async def test_scan_runs_in_busybox_across_slurm_nodes(
    busybox_image: Path, slurm: dict[str, str], run_spec: RunSpec
) -> None:
    head = '[provider]\ntype = "slurm"\n[resources]\nnodes = 3\nwalltime = "10m"\n'
    text = container_spec(busybox_image) + "\n" + head
    run = await run_spec(text)
    assert run.state is PilotState.DONE, run.reason
    results = run.results()
    assert {r.status for r in results} == {"ok"} and len(results) == 10
    assert {r.node for r in results} == {"node1", "node2", "node3"}


def test_container_run_one_shot(busybox_image: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pilotkit.cli.main", "container", "run", "--image", str(busybox_image),
         "--exec", "echo hello from; ls /bin/busybox", "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello from\n/bin/busybox\n"
    assert f"output: {tmp_path / 'w' / 'tasks' / 'exec-0' / 'attempt-1.out'}" in out.stderr
    assert "runtime = \"oci\"" in (tmp_path / "w" / "spec.toml").read_text()
