"""The k3s app on this machine (the local provider, one node) with the fake k3s on PATH
and the fake Kubernetes API behind the client interface: Jobs to task results, logs,
preflight refusal, drain, and a node that keeps nothing."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tarfile
import types
from pathlib import Path
from typing import Any

import pytest

from pilotkit.api import PilotContext, PilotState, Register, StagedImage, Stager, hookimpl
from pilotkit.testing import Pilot, Plugins, RunSpec

from .conftest import FAKE_API_PLUGIN, FakeK3s, job_manifest, write_fake_helm

LOCAL = """
[provider]
type = "local"
[pilot]
heartbeat = "0.5s"
grace = "3s"
"""


def spec(tmp_path: Path, app: str) -> str:
    data = tmp_path / "k3s-data"
    return (
        f'name = "k3s-local"\n{LOCAL}\n[app]\ntype = "k3s-fakeapi"\npoll_interval = "0.1s"\n'
        f'data_dir = "{data}"\ngrace = "2s"\n{app}'
    )


def nothing_left(fake: FakeK3s, data_root: Path) -> None:
    for call in fake.calls().values():
        assert not Path(f"/proc/{call['shim']}").exists() or _zombie(call["shim"]), "the shim was killed"
    assert not any(data_root.iterdir()) if data_root.exists() else True, list(data_root.rglob("*"))


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


async def test_fake_k3s_fake_api_jobs_become_task_results(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, run_spec: RunSpec, tmp_path: Path
) -> None:
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    (fake_k3s.state / "make-mounts").write_text("")  # k3s's mounts are real here (as root)
    (tmp_path / "ok.yaml").write_text(job_manifest("hello", "echo hello from the pod"))
    (tmp_path / "bad.yaml").write_text(job_manifest("broken", "echo about to fail; exit 3"))
    run = await run_spec(
        spec(tmp_path, f'manifests = ["{tmp_path}/ok.yaml", "{tmp_path}/bad.yaml"]\n'),
        workdir=tmp_path / "run",
    )
    assert run.state is PilotState.FAILED, "a failed Job fails the pilot"
    by_task = {r.task: r for r in run.results()}
    assert by_task["job-hello"].exit_code == 0 and by_task["job-hello"].status == "ok"
    assert by_task["job-broken"].exit_code == 3 and by_task["job-broken"].status == "failed"
    tasks = tmp_path / "run" / "tasks"
    assert (tasks / "job-hello" / "pods" / "hello-fake0.log").read_text() == "hello from the pod\n"
    assert "hello from the pod" in (tasks / "job-hello" / "attempt-1.out").read_text()
    assert "about to fail" in (tasks / "job-broken" / "attempt-1.out").read_text()
    calls = fake_k3s.calls()
    (server,) = calls.values()
    assert server["role"] == "server" and "--rootless" not in server["argv"], "rootful as root"
    kubeconfig = tmp_path / "run" / "kubeconfig"
    assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
    assert "https://" in kubeconfig.read_text() and "127.0.0.1:6443" not in kubeconfig.read_text()
    assert json.loads((tmp_path / "run" / "k3s.json").read_text())["state"] == "stopped"
    applied = [c["name"] for c in fake_k3s.api_calls() if c["call"] == "apply"]
    assert applied == ["hello", "broken"]
    nothing_left(fake_k3s, tmp_path / "k3s-data")
    assert not (tmp_path / "run" / "k3s" / "token").exists(), "the join token is removed at the end"
    if os.geteuid() == 0:
        (report,) = [json.loads(p.read_text()) for p in (tmp_path / "run" / "k3s").glob("cleanup-*.json")]
        assert [m.rsplit("/", 1)[1] for m in report["unmounted"]] == ["pod-volume"]
        assert str(tmp_path / "k3s-data") not in Path("/proc/self/mounts").read_text()


async def test_fake_k3s_fake_api_preflight_refuses_a_node(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, run_spec: RunSpec, tmp_path: Path
) -> None:
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    run = await run_spec(spec(tmp_path, 'mode = "interactive"\nbinary = "k3s-not-installed"\n'))
    assert run.state is PilotState.FAILED
    assert "k3s cannot run on 1 of 1 node(s)" in (run.reason or "")
    assert "MISSING  k3s binary" in (run.reason or "")
    assert fake_k3s.calls() == {}, "nothing started"


async def test_fake_k3s_fake_api_drain_stops_pods_with_grace(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, tmp_path: Path
) -> None:
    from pilotkit.testing import parse_spec

    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    (tmp_path / "long.yaml").write_text(
        job_manifest("long", "trap 'echo got TERM; exit 143' TERM; sleep 60 & wait")
    )
    text = spec(tmp_path, f'manifests = ["{tmp_path}/long.yaml"]\n')
    resolved = parse_spec(text, tmp_path / "spec.toml", pilotkit_plugins)
    pilot = Pilot(resolved, pilotkit_plugins, workdir=tmp_path / "run")
    running = asyncio.ensure_future(pilot.run())
    for _ in range(200):
        if any(c["call"] == "apply" for c in fake_k3s.api_calls()):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    pilot.drain("walltime soon")
    outcome = await asyncio.wait_for(running, 60)
    deletes = [c for c in fake_k3s.api_calls() if c["call"] == "delete_pods"]
    assert deletes and deletes[0]["grace"] == 2 and deletes[0]["pods"] == ["long-fake0"]
    assert [c["call"] for c in fake_k3s.api_calls()].count("cordon") == 1
    assert outcome.state in (PilotState.DONE, PilotState.CANCELLED, PilotState.FAILED)
    nothing_left(fake_k3s, tmp_path / "k3s-data")
    assert os.path.exists(
        tmp_path / "run" / "k3s" / f"cleanup-{next(iter(fake_k3s.calls().values()))['node']}.json"
    )


async def test_fake_k3s_fake_api_node_never_ready_times_out_and_cleans(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, run_spec: RunSpec, tmp_path: Path
) -> None:
    import socket

    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    (fake_k3s.state / f"notready-{socket.gethostname()}").write_text("")
    run = await run_spec(
        spec(tmp_path, 'mode = "interactive"\nready_timeout = "2s"\n'), workdir=tmp_path / "run"
    )
    assert run.state is PilotState.FAILED
    assert f"1 of 1 k3s node(s) not Ready within 2s: {socket.gethostname()}" in (run.reason or ""), run.reason
    nothing_left(fake_k3s, tmp_path / "k3s-data")


async def test_fake_k3s_fake_api_cancel_still_cleans_the_node(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, tmp_path: Path
) -> None:
    """Ctrl-C: the pool stops every task with the pilot's grace; the node wrapper still
    removes what k3s left."""
    from pilotkit.testing import parse_spec

    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    resolved = parse_spec(spec(tmp_path, 'mode = "interactive"\n'), tmp_path / "spec.toml", pilotkit_plugins)
    pilot = Pilot(resolved, pilotkit_plugins, workdir=tmp_path / "run")
    running = asyncio.ensure_future(pilot.run())
    for _ in range(200):
        if (tmp_path / "run" / "k3s.json").exists():
            break
        await asyncio.sleep(0.05)
    pilot.cancel("Ctrl-C")
    outcome = await asyncio.wait_for(running, 60)
    assert outcome.state is PilotState.CANCELLED
    (call,) = fake_k3s.calls().values()
    assert "stopped" in call, "k3s got SIGTERM"
    report = json.loads((tmp_path / "run" / "k3s" / f"cleanup-{call['node']}.json").read_text())
    assert report["stopped"] and not report.get("left") and report["killed"]
    nothing_left(fake_k3s, tmp_path / "k3s-data")


async def test_gpu_node_gets_the_nvidia_runtime_and_device_plugin_fake_nvml(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, run_spec: RunSpec, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No GPU here: NVML is a fake (one whole GPU, one in MIG mode with 2 instances), and
    so is the NVIDIA container runtime (an executable that does nothing). k3s finds the
    runtime in its containerd templates when it starts; the device plugin is applied
    with the MIG strategy of the node."""
    from pilotkit import probe
    from pilotkit.gpu import detect_gpus
    from pilotkit.testing.fake_nvml import FakeGpu, FakeNVML

    nvml = FakeNVML([FakeGpu(), FakeGpu(mig_enabled=True, mig_instances=2)])
    monkeypatch.setattr(probe, "gpu_report", lambda: detect_gpus(nvml=nvml, env={}))
    runtime = fake_k3s.bin / "nvidia-container-runtime"
    runtime.write_text("#!/bin/sh\nexit 0\n")
    runtime.chmod(0o755)
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    (tmp_path / "ok.yaml").write_text(job_manifest("hello", "echo hello"))
    run = await run_spec(spec(tmp_path, f'manifests = ["{tmp_path}/ok.yaml"]\n'), workdir=tmp_path / "run")
    assert run.state is PilotState.DONE, run.reason
    (server,) = fake_k3s.calls().values()
    templates = server["containerd"]
    assert sorted(templates) == ["config-v3.toml.tmpl", "config.toml.tmpl"]
    for text in templates.values():
        assert text.startswith('{{ template "base" . }}'), "k3s's own configuration comes first"
        assert f'BinaryName = "{runtime}"' in text and "pilotkit-nvidia" in text
    applied = {c["kind"]: c for c in fake_k3s.api_calls() if c["call"] == "apply"}
    assert applied["RuntimeClass"]["manifest"]["handler"] == "pilotkit-nvidia"
    daemonset = applied["DaemonSet"]
    node = server["node"]
    assert daemonset["namespace"] == "kube-system" and daemonset["name"].startswith("nvidia-device-plugin-")
    pod = daemonset["manifest"]["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia" and pod["nodeSelector"]["kubernetes.io/hostname"] == node
    assert {"name": "MIG_STRATEGY", "value": "mixed"} in pod["containers"][0]["env"], "a whole GPU and MIG slices"
    (volume,) = pod["volumes"]
    assert volume["hostPath"]["path"] == f"{tmp_path / 'k3s-data'}/pilotkit-k3s-{run.pilot_id}/{node}/kubelet/device-plugins"
    labels = [c["labels"] for c in fake_k3s.api_calls() if c["call"] == "label"]
    assert labels[0]["pilotkit.io/gpu.count"] == "3" and labels[0]["pilotkit.io/gpu.mig"] == "true"
    nothing_left(fake_k3s, tmp_path / "k3s-data")


async def test_gpu_node_without_the_nvidia_runtime_is_refused_fake_nvml(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, run_spec: RunSpec, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pilotkit import probe
    from pilotkit.gpu import detect_gpus
    from pilotkit.testing.fake_nvml import FakeGpu, FakeNVML

    monkeypatch.setattr(probe, "gpu_report", lambda: detect_gpus(nvml=FakeNVML([FakeGpu()]), env={}))
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    missing = tmp_path / "no-such" / "nvidia-container-runtime"
    run = await run_spec(
        spec(tmp_path, f'mode = "interactive"\nnvidia_runtime = "{missing}"\n'), workdir=tmp_path / "run"
    )
    assert run.state is PilotState.FAILED
    assert f"no NVIDIA container runtime '{missing}' on this GPU node" in (run.reason or ""), run.reason
    assert not fake_k3s.calls(), "k3s was not started"
    nothing_left(fake_k3s, tmp_path / "k3s-data")


class CopyStager(Stager):
    """A stager for the test: "stages" a local file by copying it into the pilot's
    workdir (where the shipped stagers make SIF files or directories, not archives)."""

    id = "k3s-test-copy"

    async def stage(self, ref: str, ctx: PilotContext) -> StagedImage:
        target = ctx.workdir / "staged" / Path(ref).name
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(ref, target)
        return StagedImage(ref, target, "oci-archive" if Path(ref).suffix == ".oci" else "sif")


@hookimpl
def _register_copy_stager(register: Register[Any]) -> None:
    register(CopyStager)


def oci_archive(path: Path) -> Path:
    """A small OCI image layout as a tar file (no suffix k3s would recognise)."""
    with tarfile.open(path, "w") as tar:
        for name, data in (("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", b'{"manifests": []}')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


async def test_the_staged_image_archive_is_preloaded_on_the_node(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, tmp_path: Path
) -> None:
    from pilotkit.testing import parse_spec

    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    pilotkit_plugins.register_module(
        "k3s-test-copy", types.SimpleNamespace(pilotkit_register_stagers=_register_copy_stager)
    )
    archive = oci_archive(tmp_path / "app.oci")
    listed = tmp_path / "other.tar"
    shutil.copyfile(archive, listed)
    image = f'\n[image]\nref = "{archive}"\nstager = "k3s-test-copy"\n'
    text = spec(tmp_path, f'mode = "interactive"\nimages = ["{listed}"]\n') + image
    pilot = Pilot(parse_spec(text, tmp_path / "spec.toml", pilotkit_plugins), pilotkit_plugins, workdir=tmp_path / "run")
    running = asyncio.ensure_future(pilot.run())
    for _ in range(300):
        if any(c["call"] == "label" for c in fake_k3s.api_calls()):
            break
        await asyncio.sleep(0.05)
    pilot.drain("test done")
    outcome = await asyncio.wait_for(running, 60)
    assert outcome.state is PilotState.DONE, outcome.reason
    (server,) = fake_k3s.calls().values()
    staged = tmp_path / "run" / "staged" / "app.oci"
    assert server["images"] == {"app.oci.tar": str(staged), "other.tar": str(listed)}, "named so k3s reads it"
    nothing_left(fake_k3s, tmp_path / "k3s-data")


async def test_a_staged_image_that_is_no_archive_is_refused(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, run_spec: RunSpec, tmp_path: Path
) -> None:
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    pilotkit_plugins.register_module(
        "k3s-test-copy", types.SimpleNamespace(pilotkit_register_stagers=_register_copy_stager)
    )
    sif = tmp_path / "app.sif"
    sif.write_bytes(b"\0" * 32 + b"SIF_MAGIC" + b"\0" * 600)
    image = f'\n[image]\nref = "{sif}"\nstager = "k3s-test-copy"\n'
    run = await run_spec(spec(tmp_path, 'mode = "interactive"\n') + image, workdir=tmp_path / "run")
    assert run.state is PilotState.FAILED
    assert run.reason is not None and run.reason.startswith("image.ref: "), run.reason
    assert "was staged as sif" in run.reason and "not an image archive" in run.reason
    assert not fake_k3s.calls(), "k3s was not started"


def a_chart(tmp_path: Path) -> tuple[Path, Path]:
    chart = tmp_path / "mychart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: mychart\nversion: 0.1.0\n")
    (chart / "templates" / "job.yaml").write_text(job_manifest("charted", "echo hello from the chart"))
    values = tmp_path / "values.yaml"
    values.write_text("replicas: 1\n")
    return chart, values


async def test_helm_charts_installed_and_their_jobs_followed_fake_helm(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, run_spec: RunSpec, tmp_path: Path
) -> None:
    """A fake helm (helm is not installed here): what it is asked, and the chart's Job
    followed to a task result like a manifest's."""
    write_fake_helm(fake_k3s)
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    chart, values = a_chart(tmp_path)
    app = 'charts = [{name = "rel", chart = "./mychart", values = "values.yaml", version = "0.1.0"}]\n'
    run = await run_spec(spec(tmp_path, app), workdir=tmp_path / "run")
    assert run.state is PilotState.DONE, run.reason
    (result,) = [r for r in run.results() if r.task.startswith("job-")]
    assert result.task == "job-charted" and result.exit_code == 0
    assert "hello from the chart" in (tmp_path / "run" / "tasks" / "job-charted" / "attempt-1.out").read_text()
    calls = [json.loads(line) for line in (fake_k3s.state / "helm.jsonl").read_text().splitlines()]
    kubeconfig = str(tmp_path / "run" / "kubeconfig")
    assert calls == [
        ["upgrade", "--install", "rel", str(chart), "--namespace", "default", "--create-namespace",
         "--kubeconfig", kubeconfig, "--version", "0.1.0", "--values", str(values)],
        ["get", "manifest", "rel", "--namespace", "default", "--kubeconfig", kubeconfig],
    ]  # fmt: skip
    nothing_left(fake_k3s, tmp_path / "k3s-data")


async def test_a_failing_helm_fails_the_pilot_with_the_chart_named_fake_helm(
    fake_k3s: FakeK3s, pilotkit_plugins: Plugins, run_spec: RunSpec, tmp_path: Path
) -> None:
    write_fake_helm(fake_k3s)
    (fake_k3s.state / "helm-fails").write_text("")
    pilotkit_plugins.register_module("k3s-fakeapi", FAKE_API_PLUGIN)
    a_chart(tmp_path)
    run = await run_spec(spec(tmp_path, 'charts = [{name = "rel", chart = "./mychart"}]\n'), workdir=tmp_path / "run")
    assert run.state is PilotState.FAILED
    assert (run.reason or "").startswith("app.charts[0]: helm could not install './mychart'"), run.reason
    assert "fake helm failing on purpose" in (run.reason or "")
    nothing_left(fake_k3s, tmp_path / "k3s-data")
