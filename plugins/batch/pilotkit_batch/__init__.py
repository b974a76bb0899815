"""pilotkit-batch: claim a pilot's allocation from a batch system.

Slurm is supported end to end: job-script rendering, command builders, output parsers
(:mod:`pilotkit_batch.slurm`) and async wrappers with retries
(:mod:`pilotkit_batch.commands`). PBS Pro (:mod:`pilotkit_batch.pbs`), LSF
(:mod:`pilotkit_batch.lsf`) and HTCondor (:mod:`pilotkit_batch.htcondor`) have script
rendering, builders and parsers only, and have not yet been run against a real server.

Host lists in Slurm's compressed form are handled by :mod:`pilotkit_batch.hostlist`.
"""

from __future__ import annotations

from typing import Any

import pilotkit


@pilotkit.hookimpl
def pilotkit_register_providers(register: Any) -> None:
    from .provider import SlurmProvider

    register(SlurmProvider)
