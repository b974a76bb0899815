"""The pure parts of pilotkit-ray: node plans, MIG slices, command lines, spec checks."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from pilotkit_ray.commands import mig_resources, node_argv, plan_nodes, temp_dir_for
from pilotkit_ray.connection import ConnectionInfo, parse_info, port_of
from pilotkit_ray.node import free_ports, parse
from pilotkit_ray.options import RayOptions
from pilotkit_ray.progress import ProgressTracker, parse_summary

from pilotkit.api import GpuInfo, NodeInfo, PilotkitError

GIB = 1024**3


def test_every_node_offers_what_its_agent_found() -> None:
    nodes = [
        NodeInfo(name="n1", cores=8, memory=10 * GIB),
        NodeInfo(
            name="n2",
            cores=4,
            memory=4 * GIB,
            gpus=[GpuInfo(index=0, uuid="GPU-a"), GpuInfo(index=1, uuid="GPU-b")],
        ),
    ]
    head, worker = plan_nodes(nodes, RayOptions(object_store_memory="1GiB", resources={"disk": 2}))
    assert head.head and not worker.head
    assert (head.cpus, head.gpus, head.memory + head.object_store_memory) == (8, 0, 10 * GIB)
    assert (worker.cpus, worker.gpus, worker.memory, worker.object_store_memory) == (4, 2, 3 * GIB, GIB)
    assert worker.resources == {"disk": 2}
    assert head.task_id == "ray-head" and worker.task_id == "ray-worker-n2"


def test_default_object_store_is_a_share_of_the_node_and_at_least_75mib() -> None:
    (big,) = plan_nodes([NodeInfo(name="n", cores=1, memory=10 * GIB)], RayOptions())
    assert big.object_store_memory == 3 * GIB and big.memory == 7 * GIB
    (small,) = plan_nodes([NodeInfo(name="n", cores=1, memory=100 * 1024**2)], RayOptions())
    assert small.object_store_memory == 75 * 1024**2


def test_mig_slices_become_custom_resources() -> None:
    gpus = [
        GpuInfo(index=0, uuid="MIG-1", name="NVIDIA A100-SXM4-40GB MIG 1g.5gb", mig_parent="GPU-p"),
        GpuInfo(index=0, uuid="MIG-2", name="NVIDIA A100-SXM4-40GB MIG 1g.5gb", mig_parent="GPU-p"),
        GpuInfo(index=0, uuid="MIG-3", name="NVIDIA A100-SXM4-40GB MIG 3g.20gb", mig_parent="GPU-p"),
        GpuInfo(index=1, uuid="GPU-q", name="NVIDIA A100-SXM4-40GB"),
    ]
    assert mig_resources(gpus) == {"MIG": 3, "MIG-1g.5gb": 2, "MIG-3g.20gb": 1}
    (plan,) = plan_nodes([NodeInfo(name="g", cores=16, memory=64 * GIB, gpus=gpus)], RayOptions())
    assert plan.gpus == 4 and plan.resources["MIG-1g.5gb"] == 2


def test_node_argv_passes_the_resources_to_ray_start(tmp_path: Path) -> None:
    nodes = [NodeInfo(name="n1", cores=2, memory=GIB), NodeInfo(name="n2", cores=3, memory=GIB)]
    options = RayOptions(object_store_memory="100MiB", dashboard=True, host="10.0.0.1")
    head, worker = plan_nodes(nodes, options)
    argv = node_argv("py", head, 0, tmp_path, options, "/tmp/pkray-x")
    args, ray = parse(argv[3:])
    assert args.head and args.dashboard and args.host == "10.0.0.1"
    assert args.ready_file == tmp_path / "ray-nodes" / "n1.json"
    assert ray[ray.index("--num-cpus") + 1] == "2" and ray[ray.index("--num-gpus") + 1] == "0"
    assert ray[ray.index("--object-store-memory") + 1] == str(100 * 1024**2)
    assert ray[ray.index("--temp-dir") + 1] == "/tmp/pkray-x/0"
    args, ray = parse(node_argv("py", worker, 1, tmp_path, options, "/tmp/pkray-x")[3:])
    assert not args.head and not args.dashboard and args.head_file == tmp_path / "ray-nodes" / "head.json"
    assert ray[ray.index("--num-cpus") + 1] == "3" and ray[ray.index("--temp-dir") + 1] == "/tmp/pkray-x/1"
    with_resources = RayOptions(resources={"a": 1})
    plan = plan_nodes(nodes, with_resources)[1]
    resources = node_argv("py", plan, 1, tmp_path, with_resources, "/t")
    assert json.loads(resources[resources.index("--resources") + 1]) == {"a": 1}


def test_temp_dir_is_short_and_one_per_pilot(tmp_path: Path) -> None:
    one, two = temp_dir_for(RayOptions(), tmp_path / ("a" * 50)), temp_dir_for(RayOptions(), tmp_path / "b")
    assert one != two and len(one) < 30
    assert temp_dir_for(RayOptions(temp_dir="/scratch/r"), tmp_path) == "/scratch/r"


def test_connection_file_round_trip_and_bad_file() -> None:
    info = ConnectionInfo(pilot="p", address="10.0.0.1:6379", client="ray://10.0.0.1:10001", mode="batch")
    assert parse_info(msgspec.json.encode(info), "x").client == info.client
    with pytest.raises(PilotkitError, match="x: not a Ray connection file"):
        parse_info(b'{"pilot": 1}', "x")
    assert port_of(info.client) == 10001
    with pytest.raises(PilotkitError, match="has no port"):
        port_of("ray://host")


def test_state_api_summary_becomes_progress_events() -> None:
    def answer(counts: dict[str, int]) -> dict[str, object]:
        summary = {"fit": {"func_or_class_name": "fit", "type": "NORMAL_TASK", "state_counts": counts}}
        return {"data": {"result": {"result": {"node_id_to_summary": {"cluster": {"summary": summary}}}}}}

    tracker = ProgressTracker("p")
    first = parse_summary(answer({"PENDING_NODE_ASSIGNMENT": 3, "RUNNING_IN_RAY_GET": 1, "RUNNING": 1}))
    (event,) = tracker.changes(first)
    assert (event.name, event.kind, event.total, event.pending, event.running) == (
        "fit",
        "NORMAL_TASK",
        5,
        3,
        2,
    )
    assert tracker.changes(first) == [], "nothing changed"
    (event,) = tracker.changes(parse_summary(answer({"FINISHED": 4, "FAILED": 1})))
    assert (event.app, event.done, event.failed, event.pending, event.running) == ("ray", 4, 1, 0, 0)
    assert parse_summary({"result": False, "msg": "no"}) == {}


def test_services_while_the_cluster_runs(tmp_path: Path) -> None:
    from pilotkit_ray import RayApp
    from pilotkit_ray.connection import write_info

    assert RayApp.services(tmp_path) == []
    info = ConnectionInfo(
        pilot="p", address="10.0.0.1:6379", client="ray://10.0.0.1:10001", mode="interactive",
        dashboard="http://10.0.0.1:8265",
    )  # fmt: skip
    write_info(tmp_path, info)
    assert [(s.name, s.url) for s in RayApp.services(tmp_path)] == [
        ("Ray client", "ray://10.0.0.1:10001"), ("Ray address", "10.0.0.1:6379"),
        ("Ray dashboard", "http://10.0.0.1:8265"),
    ]  # fmt: skip
    info.state = "stopped"
    write_info(tmp_path, info)
    assert RayApp.services(tmp_path) == []


def test_the_ports_of_one_ray_start_are_distinct() -> None:
    """Each of a node's Ray components gets its own port: Ray refuses to start when two
    get the same one (a port closed before the next is chosen can come back)."""
    for _ in range(20):
        ports = free_ports(9)
        assert len(set(ports)) == 9 and all(p > 0 for p in ports)
