"""pilotkit-batch: claim a pilot's allocation from a batch system.

Providers ``slurm``, ``pbs``, ``lsf`` and ``htcondor``, all on one agent path
(:mod:`pilotkit_batch.base`): one batch job per pilot whose script starts the head agent,
which starts one node agent per node. Each system has a pure module (job script, command
lines, output parsers: :mod:`~pilotkit_batch.slurm`, :mod:`~pilotkit_batch.pbs`,
:mod:`~pilotkit_batch.lsf`, :mod:`~pilotkit_batch.htcondor`) and its provider with the
async command wrappers (:mod:`pilotkit_batch.commands` for Slurm, ``*_provider``
for the others). PBS, LSF and HTCondor have not yet been run against a real server.

Host lists in Slurm's compressed form are handled by :mod:`pilotkit_batch.hostlist`.
"""

from __future__ import annotations

from typing import Any

from pilotkit.api import hookimpl


@hookimpl
def pilotkit_register_providers(register: Any) -> None:
    """Register the four providers, each imported when a spec first uses it."""
    register.lazy("slurm", "pilotkit_batch.provider:SlurmProvider")
    register.lazy("pbs", "pilotkit_batch.pbs_provider:PbsProvider")
    register.lazy("lsf", "pilotkit_batch.lsf_provider:LsfProvider")
    register.lazy("htcondor", "pilotkit_batch.htcondor_provider:HtcondorProvider")
