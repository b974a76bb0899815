"""The Slurm provider: one batch job per pilot, one node agent per node.

The shared agent path is :class:`pilotkit_batch.base.BatchProvider`. Here: the job script
(:mod:`pilotkit_batch.slurm`) asks for ``--signal=B:USR1@<margin>`` before the walltime
ends (TERM comes on scancel), and the head agent starts a node agent on every node with
``srun --ntasks-per-node=1 --no-kill`` (a node that fails ends its own agent, not the
step of the others). The walltime is checked against the partition's limit
before submitting (sbatch would accept it and leave the job pending for ever).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pilotkit.api import Rendezvous

from . import commands, hostlist, slurm
from .base import BatchOptions, BatchProvider, callback_host
from .job import BatchJob
from .jobstate import JobInfo

__all__ = ["SlurmOptions", "SlurmProvider", "callback_host"]


class SlurmOptions(BatchOptions, forbid_unknown_fields=True, omit_defaults=True):
    """Options of ``[provider] type = "slurm"``."""

    srun_args: list[str] = []
    """Extra arguments for the srun that starts the node agents."""
    prologue: list[str] = []
    """Shell lines the job script runs before it starts the agents (``module load
    cuda/12``, ``source ~/env/bin/activate``): the agents on every node, and so the
    tasks, inherit the environment they set. The first line that fails ends the job
    with ``pilotkit: prologue line N failed`` in its stderr."""


class SlurmProvider(BatchProvider):
    """Claims an allocation of ``resources.nodes`` nodes from Slurm."""

    id = "slurm"
    Options = SlurmOptions
    system = "Slurm"
    description = "a Slurm batch job; one node agent per node"

    def launch_argv(self, rdv: Rendezvous, workdir: Path) -> list[str]:
        return self._srun_agents(rdv, self.spec.spec.resources.nodes)

    def replacement_argv(self, rdv: Rendezvous, nodes: int) -> list[str] | None:
        return self._srun_agents(rdv, nodes)

    def _srun_agents(self, rdv: Rendezvous, nodes: int) -> list[str]:
        options: SlurmOptions = self.options
        return [
            "srun", "--ntasks-per-node=1", f"--nodes={nodes}", "--kill-on-bad-exit=0",
            "--no-kill", *options.srun_args, *rdv.node_agent_argv(),
        ]  # fmt: skip

    def render(self, job: BatchJob) -> str:
        """The script, with the job named ``pk-<pilot name>`` so that squeue shows it is a
        pilot (and ``--comment`` naming the pilot id)."""
        options: SlurmOptions = self.options
        return slurm.render_script(
            dataclasses.replace(job, name=f"pk-{job.name}", prologue=tuple(options.prologue))
        )

    def job_files(self, workdir: Path) -> tuple[str, str, str]:
        return "job.sh", str(workdir / "slurm-%j.out"), str(workdir / "slurm-%j.err")

    @classmethod
    async def controller(cls) -> str | None:
        return await commands.controller()

    async def before_submit(self, walltime: float) -> None:
        await commands.check_walltime(walltime, self.spec.spec.resources.partition)

    async def submit(self, script: str, workdir: Path) -> str:
        return await commands.submit(script, workdir)

    async def job_state(self, job_id: str) -> JobInfo:
        return await commands.job_state(job_id)

    async def cancel(self, job_id: str) -> None:
        await commands.cancel(job_id)

    def nodes_of(self, info: JobInfo) -> list[str]:
        return hostlist.expand(",".join(info.nodes)) if info.nodes else []

    def allocation_data(self) -> dict[str, str]:
        return {"partition": self.spec.spec.resources.partition or ""}
