"""What to ask a batch system for: one description shared by every backend.

A :class:`BatchJob` holds numbers in plain units (seconds, bytes); each backend turns
it into its own directives. Build one from a spec with :meth:`BatchJob.from_spec` or
from a ``[resources]`` table with :meth:`BatchJob.from_resources`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pilotkit.api import parse_duration, parse_size

if TYPE_CHECKING:
    from pilotkit.api import ResolvedSpec, Resources

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class BatchJob:
    """One pilot job: which resources, and the one command to run on the first node."""

    name: str
    command: Sequence[str]
    """The argv run (under ``exec``) by the job script."""
    workdir: str
    """Where the job script starts."""
    output: str
    """Path of the job's stdout; may hold the batch system's placeholders (``%j``)."""
    error: str
    """Path of the job's stderr."""
    nodes: int = 1
    cores: int | None = None
    """Cores per node; None asks for whole nodes (exclusive)."""
    memory: int | None = None
    """Bytes per node; None leaves memory out of the request."""
    gpus: int | None = None
    """GPUs per node; None or 0 asks for none."""
    walltime: float | None = None
    """Seconds; None leaves the batch system's default."""
    partition: str | None = None
    """Slurm partition, PBS/LSF queue."""
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    exclusive: bool = False
    signal_margin: float = 60.0
    """Seconds before the walltime ends at which the job is sent SIGUSR1 (where the
    batch system can)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Exported by the job script before the command runs."""
    comment: str | None = None
    """Shown with the job where the batch system keeps a comment (Slurm's ``--comment``)."""
    prologue: Sequence[str] = ()
    """Shell lines the job script runs before the command (``module load ...``); the
    first that fails ends the job with a line naming it."""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a batch job needs a name")
        if not self.command:
            raise ValueError("a batch job needs a command")
        if self.nodes < 1:
            raise ValueError(f"nodes must be at least 1, not {self.nodes}")
        if self.cores is not None and self.cores < 1:
            raise ValueError(f"cores must be at least 1, not {self.cores}")
        if self.gpus is not None and self.gpus < 0:
            raise ValueError(f"gpus cannot be negative ({self.gpus})")
        if self.memory is not None and self.memory < 1:
            raise ValueError(f"memory must be positive, not {self.memory}")
        if self.walltime is not None and self.walltime <= 0:
            raise ValueError(f"walltime must be positive, not {self.walltime:g}")
        if self.signal_margin < 0:
            raise ValueError(f"signal_margin cannot be negative ({self.signal_margin:g})")
        for key in self.env:
            if not _ENV_NAME.match(key):
                raise ValueError(f"'{key}' is not a valid environment variable name")

    @property
    def whole_nodes(self) -> bool:
        """Whether whole nodes are asked for: ``exclusive`` set, or no core count given."""
        return self.exclusive or self.cores is None

    @property
    def gpus_per_node(self) -> int:
        return self.gpus or 0

    @property
    def memory_mib(self) -> int | None:
        """Memory per node in MiB, rounded up."""
        return None if self.memory is None else math.ceil(self.memory / MIB)

    @classmethod
    def from_resources(
        cls,
        resources: Resources,
        *,
        name: str,
        command: Sequence[str],
        workdir: str,
        output: str,
        error: str,
        signal_margin: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> BatchJob:
        """A job for the ``[resources]`` table of a spec."""
        return cls(
            name=name,
            command=tuple(command),
            workdir=workdir,
            output=output,
            error=error,
            nodes=resources.nodes,
            cores=resources.cores,
            memory=None if resources.memory is None else parse_size(resources.memory),
            gpus=resources.gpus,
            walltime=None if resources.walltime is None else parse_duration(resources.walltime),
            partition=resources.partition,
            account=resources.account,
            qos=resources.qos,
            constraint=resources.constraint,
            exclusive=resources.exclusive,
            signal_margin=signal_margin,
            env=dict(env or {}),
        )

    @classmethod
    def from_spec(
        cls,
        spec: ResolvedSpec,
        *,
        command: Sequence[str],
        workdir: str,
        output: str,
        error: str,
        env: Mapping[str, str] | None = None,
    ) -> BatchJob:
        """A job for a resolved spec: its name, resources, and its drain margin as the
        signal margin."""
        return cls.from_resources(
            spec.spec.resources,
            name=spec.name,
            command=command,
            workdir=workdir,
            output=output,
            error=error,
            signal_margin=parse_duration(spec.spec.pilot.drain_margin),
            env=env,
        )


def memory_text(nbytes: int, *, units: tuple[str, str] = ("G", "M")) -> str:
    """Memory as whole GiB where exact, else MiB rounded up: ``4G``, ``1536M``.

    :param units: the suffixes the batch system wants for GiB and MiB.
    """
    if nbytes % GIB == 0:
        return f"{nbytes // GIB}{units[0]}"
    return f"{math.ceil(nbytes / MIB)}{units[1]}"


def hms(seconds: float) -> str:
    """``HH:MM:SS`` with hours past 24 allowed (PBS's walltime), rounded up."""
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def refuse_unsupported(job: BatchJob, system: str, fields: Sequence[str]) -> None:
    """Raise ValueError naming the ``fields`` of ``job`` that are set but that ``system``
    has no way to ask for (rather than drop them silently)."""
    named = [name for name in fields if getattr(job, name)]
    if named:
        raise ValueError(f"{system} has no equivalent for resources.{', resources.'.join(named)}; remove it")
