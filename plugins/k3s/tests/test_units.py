"""The pure parts: which node runs what, command lines, GPU labels, spec checks,
manifests, exit codes. Nothing is started."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from pilotkit_k3s.commands import gpu_labels, join_url, k3s_argv, plan_nodes
from pilotkit_k3s.kube import JobState, PodState, exit_code_of, load_manifests
from pilotkit_k3s.options import K3sOptions

from pilotkit.api import GpuInfo, NodeInfo, SpecError
from pilotkit.testing import cli

GIB = 1024**3
NODES = [
    NodeInfo("n1", 8, 16 * GIB, address="10.0.0.1"),
    NodeInfo("n2", 8, 16 * GIB),
    NodeInfo("n3", 8, 16 * GIB),
]


def test_server_on_the_first_node_agents_on_the_others() -> None:
    plans = plan_nodes(NODES, K3sOptions(data_dir="/scratch/local"), "p-1")
    assert [(p.node, p.role, p.task_id) for p in plans] == [
        ("n1", "server", "k3s-server-n1"),
        ("n2", "agent", "k3s-agent-n2"),
        ("n3", "agent", "k3s-agent-n3"),
    ]
    assert [p.data_dir for p in plans] == [f"/scratch/local/pilotkit-k3s-p-1/{n}" for n in ("n1", "n2", "n3")]
    assert all(p.labels == {"pilotkit.io/pilot": "p-1"} for p in plans)


def test_join_url_uses_the_address_when_known() -> None:
    assert join_url(NODES[0], 6443) == "https://10.0.0.1:6443"
    assert join_url(NODES[1], 7443) == "https://n2:7443"
    assert join_url(NodeInfo("v6", 1, GIB, address="fd00::1"), 6443) == "https://[fd00::1]:6443"


def test_rootful_and_rootless_command_lines(tmp_path: Path) -> None:
    options = K3sOptions(data_dir="/local", server_args=["--cluster-cidr", "10.99.0.0/16"])
    server, agent = plan_nodes(NODES[:2], options, "p")
    rootful = k3s_argv(server, options, False, tmp_path, NODES[0])
    assert rootful[:2] == ["k3s", "server"]
    assert rootful[rootful.index("--data-dir") + 1] == "/local/pilotkit-k3s-p/n1/k3s"
    assert rootful[rootful.index("--token-file") + 1] == str(tmp_path / "k3s" / "token")
    assert rootful[rootful.index("--write-kubeconfig") + 1] == str(
        tmp_path / "k3s" / "server-kubeconfig.yaml"
    )
    assert "root-dir=/local/pilotkit-k3s-p/n1/kubelet" in rootful
    assert rootful[rootful.index("--disable") + 1] == "traefik"
    assert rootful[-2:] == ["--cluster-cidr", "10.99.0.0/16"]
    assert "--rootless" not in rootful and "--server" not in rootful
    rootless = k3s_argv(agent, options, True, tmp_path, NODES[0])
    assert rootless[:2] == ["k3s", "agent"]
    assert rootless[rootless.index("--server") + 1] == "https://10.0.0.1:6443"
    assert "--rootless" in rootless and rootless[rootless.index("--snapshotter") + 1] == "fuse-overlayfs"
    assert "feature-gates=KubeletInUserNamespace=true" in rootless
    assert "--write-kubeconfig" not in rootless and "--cluster-cidr" not in rootless


def test_gpu_nodes_get_labels_from_the_nvml_probe() -> None:
    a100 = GpuInfo(0, "GPU-1", name="NVIDIA A100-SXM4-40GB", memory_total=40 * GIB)
    assert gpu_labels(NodeInfo("g", 8, GIB, gpus=[a100, a100])) == {
        "pilotkit.io/gpu.count": "2",
        "pilotkit.io/gpu.product": "NVIDIA-A100-SXM4-40GB",
        "pilotkit.io/gpu.memory-mib": "40960",
    }
    mig = GpuInfo(
        0, "MIG-1", name="NVIDIA A100-SXM4-40GB MIG 1g.5gb", memory_total=5 * GIB, mig_parent="GPU-1"
    )
    labels = gpu_labels(NodeInfo("g", 8, GIB, gpus=[mig]))
    assert labels["pilotkit.io/gpu.mig"] == "true" and labels["pilotkit.io/gpu.mig-profile"] == "1g.5gb"
    assert gpu_labels(NODES[0]) == {}
    (plan,) = plan_nodes([NodeInfo("g", 8, GIB, gpus=[a100])], K3sOptions(), "p")
    assert plan.labels["pilotkit.io/gpu.count"] == "1"


def test_manifests_are_read_with_located_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n"
    )
    assert [o["metadata"]["name"] for o in load_manifests(good, "app.manifests[0]")] == ["a", "b"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: [unclosed\n")
    with pytest.raises(SpecError, match=r"app.manifests\[1\].*bad.yaml line \d+: not YAML"):
        load_manifests(bad, "app.manifests[1]")
    odd = tmp_path / "odd.yaml"
    odd.write_text("just: a mapping\n")
    with pytest.raises(SpecError, match="document 1: not a Kubernetes object"):
        load_manifests(odd, "app.manifests[0]")


def test_a_jobs_exit_code() -> None:
    done = JobState("j", "default", finished=True, failed=False)
    failed = JobState("j", "default", finished=True, failed=True, reason="BackoffLimitExceeded")
    assert exit_code_of([PodState("p", "n", "Succeeded", 0)], done) == 0
    assert exit_code_of([PodState("p1", "n", "Failed", 3), PodState("p2", "n", "Failed", 4)], failed) == 4
    assert exit_code_of([], JobState("j", "default", True, True, "DeadlineExceeded")) == 1


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("", "batch mode needs manifests"),
        ('manifests = ["missing.yaml"]\n', "app.manifests[0]: no such file"),
        ('mode = "interactive"\nready_timeout = "0s"\n', "app.ready_timeout: must be more than 0"),
        ('mode = "interactive"\nbogus = 1\n', "bogus"),
        ('mode = "interactive"\nimages = ["spec.toml"]\n', "app.images[0]: spec.toml: not an image archive"),
        ('mode = "interactive"\nimages = ["none.tar"]\n', "app.images[0]: no such file"),
        (
            'charts = [{name = "rel", chart = "./nochart"}]\nhelm = "/no/such/helm"\n',
            "app.charts: no '/no/such/helm' on PATH: install Helm",
        ),
        (
            'mode = "interactive"\ncharts = [{name = "Bad_Name", chart = "repo/x"}]\nhelm = "sh"\n',
            "app.charts[0].name",
        ),
        (
            'mode = "interactive"\ncharts = [{name = "a", chart = "./nochart"}]\nhelm = "sh"\n',
            "app.charts[0].chart: no such chart",
        ),
        (
            'mode = "interactive"\ncharts = [{name = "a", chart = "repo/x", values = "v.yaml"}]\nhelm = "sh"\n',
            "app.charts[0].values: no such file",
        ),
        (
            'mode = "interactive"\n[image]\nref = "/tmp/app.sif"\n[container]\nruntime = "apptainer"\n',
            "container: the k3s app runs its pods' images itself: remove [container]",
        ),
    ],
)
def test_bad_specs_are_one_located_line(tmp_path: Path, app: str, message: str) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(f'name = "k"\n[app]\ntype = "k3s"\n{app}')
    result = CliRunner().invoke(cli, ["validate", str(spec)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_mig_strategy_from_the_nvml_probe() -> None:
    from pilotkit_k3s.nvidia import daemonset_name, mig_strategy

    whole = GpuInfo(0, "GPU-1", name="NVIDIA A100-SXM4-40GB")

    def mig(profile: str) -> GpuInfo:
        return GpuInfo(0, f"MIG-{profile}", name=f"NVIDIA A100-SXM4-40GB MIG {profile}", mig_parent="GPU-1")

    assert mig_strategy([NODES[0]]) == "none"
    assert mig_strategy([NodeInfo("g", 8, GIB, gpus=[whole, whole])]) == "none"
    assert mig_strategy([NodeInfo("g", 8, GIB, gpus=[mig("1g.5gb"), mig("1g.5gb")])]) == "single"
    assert mig_strategy([NodeInfo("g", 8, GIB, gpus=[mig("1g.5gb"), mig("3g.20gb")])]) == "mixed"
    assert mig_strategy([NodeInfo("g", 8, GIB, gpus=[whole, mig("1g.5gb")])]) == "mixed"
    assert daemonset_name("GPU_Node.07") == "nvidia-device-plugin-gpu-node-07"
    assert len(daemonset_name("n" * 100)) == 63


def test_no_nvidia_runtime_flag_without_gpus() -> None:
    from pilotkit_k3s.commands import node_argv

    (plan,) = plan_nodes([NODES[0]], K3sOptions(), "p")
    assert "--nvidia-runtime" not in node_argv("python3", plan, ["k3s"], Path("/w"), 5.0)
    argv = node_argv("python3", plan, ["k3s"], Path("/w"), 5.0, (), "nvidia-container-runtime")
    assert argv[argv.index("--nvidia-runtime") + 1] == "nvidia-container-runtime"
    assert argv.index("--nvidia-runtime") < argv.index("--")
