"""An agent counts the cores its Slurm job has on its node, not the whole node's."""

from __future__ import annotations

import os

from pilotkit.probe import expand_counts, slurm_cores, usable_cores


def test_slurm_counts_expand() -> None:
    assert expand_counts("2(x3),1") == [2, 2, 2, 1]
    assert expand_counts("4") == [4]
    assert expand_counts("") == [] and expand_counts("two") == []


def test_the_job_share_of_this_node() -> None:
    env = {"SLURM_JOB_CPUS_PER_NODE": "2(x2),1", "SLURM_NODEID": "2", "SLURM_CPUS_ON_NODE": "2"}
    assert slurm_cores(env) == 1
    assert slurm_cores({"SLURM_CPUS_ON_NODE": "3"}) == 3
    assert slurm_cores({}) is None and slurm_cores({"SLURM_CPUS_ON_NODE": "x"}) is None


def test_usable_cores_never_exceed_the_affinity_or_the_job() -> None:
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores({}) == affinity
    assert usable_cores({"SLURM_CPUS_ON_NODE": "1"}) == 1
    assert usable_cores({"SLURM_CPUS_ON_NODE": str(affinity + 8)}) == affinity


def test_usable_memory_is_capped_by_the_job() -> None:
    from pilotkit.probe import usable_memory

    assert usable_memory({"SLURM_MEM_PER_NODE": "100"}) == 100 * 1024**2
    assert usable_memory({}) > 100 * 1024**2
