"""The classes a plugin implements.

A plugin registers *classes* through the registration hooks in :mod:`pilotkit.hookspecs`;
pilotkit instantiates them per pilot. Hooks are synchronous; the work is ``async``.

Each kind has a class attribute ``id`` (what a spec names, e.g. ``type = "local"``) and
an ``Options`` struct: the extra keys the plugin accepts in its spec section. Options
structs must use ``forbid_unknown_fields=True`` so misspelt keys are caught.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec

from .detect import find_program
from .specfile.model import Bind as Bind  # re-exported: its home before 0.2
from .specfile.model import PilotSpec
from .task import Task
from .types import Allocation, CarriedAttempt, NodeInfo, Service, TaskExit, TaskLaunch

if TYPE_CHECKING:
    from .errors import SpecProblem
    from .events import Event


# --------------------------------------------------------------------------- what plugins see


class SpecView(Protocol):
    """A resolved spec as plugins see it (:class:`pilotkit.spec.ResolvedSpec`): the
    spec's typed data, the plugin classes it selects and their typed options."""

    @property
    def spec(self) -> PilotSpec: ...
    @property
    def source(self) -> Path | None: ...
    @property
    def provider_cls(self) -> type[Provider]: ...
    @property
    def provider_options(self) -> Any: ...
    @property
    def app_cls(self) -> type[App]: ...
    @property
    def app_options(self) -> Any: ...
    @property
    def runtime_cls(self) -> type[ContainerRuntime] | None: ...
    @property
    def runtime_options(self) -> Any: ...
    @property
    def stager_cls(self) -> type[Stager] | None: ...
    @property
    def stager_options(self) -> Any: ...
    @property
    def name(self) -> str: ...
    @property
    def base_dir(self) -> Path:
        """Where relative paths in the spec start: the spec file's directory."""
        ...
    @property
    def walltime(self) -> float | None: ...
    @property
    def memory(self) -> int | None: ...
    def seconds(self, value: str | float | None) -> float | None:
        """A duration of the spec (``"10m"``, 90) in seconds."""
        ...


class NoOptions(msgspec.Struct, forbid_unknown_fields=True):
    """For plugins that take no options of their own."""


class _Plugin:
    id: ClassVar[str]
    """What a spec names to select this plugin."""
    Options: ClassVar[type[msgspec.Struct]] = NoOptions
    description: ClassVar[str] = ""

    @classmethod
    def check(cls, spec: SpecView) -> list[SpecProblem]:
        """Problems with ``spec`` that can be found before anything runs (validate time)."""
        return []


# --------------------------------------------------------------------------- agents


ExitCallback = Callable[[TaskExit], None]


class Agent(abc.ABC):
    """Runs task processes on one node. The local pilot has one in-process agent; a batch
    allocation has one per node, reached through a transport."""

    node: NodeInfo
    lost: str | None = None
    """Why the node was lost (no heartbeat, connection gone); None while it serves."""

    @abc.abstractmethod
    async def start(self) -> NodeInfo:
        """Start (or connect to) the agent; returns what its node has."""

    @abc.abstractmethod
    def launch(self, launch: TaskLaunch, on_exit: ExitCallback) -> None:
        """Start one task attempt without blocking; ``on_exit`` is called exactly once."""

    @abc.abstractmethod
    def terminate(self, task_id: str, grace: float) -> None:
        """SIGTERM the attempt's process group, SIGKILL after ``grace`` seconds."""

    def signal(self, task_id: str, sig: int) -> bool:
        """Send ``sig`` to the attempt's process group, on its node (a campaign's
        checkpoint signal); False when this agent cannot."""
        return False

    @abc.abstractmethod
    def kill_all(self) -> None:
        """SIGKILL every attempt that runs now, without waiting (a second Ctrl-C or
        cancel). Must not block; the attempts still end through their ``on_exit``."""

    @abc.abstractmethod
    async def stop(self, grace: float) -> None:
        """Terminate whatever still runs (SIGTERM, then SIGKILL after ``grace``) and stop."""

    @property
    @abc.abstractmethod
    def running(self) -> int:
        """How many attempts run now."""

    def carried(self) -> list[CarriedAttempt]:
        """Attempts this agent ran before the pilot (re)attached to it, running or ended
        (an agent that rejoined a restarted daemon); none by default."""
        return []

    def adopt(self, task_id: str, attempt: int, on_exit: ExitCallback) -> None:
        """Take over a carried attempt that still runs: ``on_exit`` is called once when
        it ends (at once if it has). Only agents with :meth:`carried` attempts need it."""
        raise NotImplementedError(f"{type(self).__name__} carries no attempts")

    def hand_over(self, launches: list[TaskLaunch]) -> bool:
        """Before the pilot lets go of this agent (its client went away, its daemon
        stopped), the attempts to start on its own, in order, as its cores come free,
        until a pilot is attached again (then the ones not started are dropped). True
        when the agent took them; by default it cannot."""
        return False

    async def flush(self) -> None:  # noqa: B027 - optional: an in-process agent has nothing to send
        """Until what was sent to the agent (a :meth:`hand_over`) has left this process."""

    @property
    def leasing(self) -> bool:
        """Whether this agent keeps a standing lease (:meth:`lease`): a node agent in
        another process that goes on when its pilot's process dies."""
        return False

    def lease(self, launches: list[TaskLaunch], on_back: Callable[[list[str]], None]) -> bool:
        """Reserve these attempts for this agent, to start on its own, in order, as its
        cores come free, only once no pilot is attached (the pilot's process died: no
        chance to :meth:`hand_over`). While attached the pilot still starts them, with
        :meth:`launch` (which takes an attempt off the lease) on this agent only; to place
        one elsewhere it calls :meth:`revoke` and waits for ``on_back``, called with the
        task ids the agent dropped, never started; ``on_back`` gets every leased attempt
        not launched when the agent is lost too. True when the agent took them."""
        return False

    def revoke(self, task_ids: list[str]) -> None:  # noqa: B027 - optional, with lease
        """Ask for leased attempts back (see :meth:`lease`); ``on_back`` answers."""


# --------------------------------------------------------------------------- providers


class Provider(_Plugin, abc.ABC):
    """Claims resources for a pilot and releases them."""

    def __init__(self, spec: SpecView, options: Any) -> None:
        self.spec = spec
        self.options = options

    @classmethod
    def node_capacity(cls, spec: SpecView) -> tuple[int | None, int | None]:
        """(cores, GPUs) per node as far as known before claiming; None where unknown."""
        return spec.spec.resources.cores, spec.spec.resources.gpus

    @abc.abstractmethod
    async def claim(self, ctx: PilotContext) -> Allocation:
        """Claim the allocation; returns once it is granted (or raises)."""

    @abc.abstractmethod
    async def agents(self, allocation: Allocation, ctx: PilotContext) -> list[Agent]:
        """One agent per node of the allocation (not yet started)."""

    async def poll(self, allocation: Allocation) -> str | None:
        """None while the allocation lasts; once it ended from outside, the pilot's final
        state (``cancelled``, ``walltime-expired``, ``failed``), optionally followed by
        ``": "`` and who or what ended it (``"cancelled: Slurm job 12 cancelled from
        outside the pilot (scancel)"``, ``"failed: Slurm job 12 ended by a node
        failure"``), which becomes the pilot's reason. Called every few seconds while the
        pilot runs, and only when a provider overrides it (the default never polls)."""
        return None

    @abc.abstractmethod
    async def release(self, allocation: Allocation) -> None:
        """Give the allocation back. Must be safe to call more than once."""

    @classmethod
    async def callback_address(cls, options: Any) -> str | None:
        """The address this provider's node agents would connect back to, chosen as
        :meth:`claim` chooses it with these ``options`` (``pilotkit doctor`` tries it from
        a node). None, the default, for providers whose agents do not call back.

        :raises PilotkitError: no address would do (one line naming the option to set)."""
        return None

    async def end_job(self, job_id: str) -> None:
        """Return once the batch job ``job_id``, claimed by a process that is gone (a
        campaign's allocation when the daemon died), has ended, ending it if it does not
        end by itself: its node agents have stopped, so what they journaled is final.
        The default does nothing (allocations end with the process that claimed them)."""

    async def reattach(self, job_id: str, ctx: PilotContext) -> Allocation | None:
        """Find the batch job ``job_id`` of a pilot that outlived the daemon and return its
        allocation, bound again to this provider, if the job still runs.

        The daemon calls it when it starts again and finds a pilot it let go of (see
        :mod:`pilotkit.daemon.reattach`); it then runs the pilot on that allocation
        instead of claiming a new one. The default returns None: this provider cannot
        re-attach, and the daemon keeps the pilot's record waiting and says so. An
        implementation returns None when the job is gone."""
        return None


# --------------------------------------------------------------------------- launchers


class Launcher(_Plugin):
    """Wraps a command so it starts once per node (or per rank): srun, mpirun, ..."""

    def wrap(
        self,
        argv: Sequence[str],
        nodes: Sequence[str],
        per_node: int = 1,
        env: dict[str, str] | None = None,
    ) -> list[str]:
        """Return the argv that runs ``argv`` ``per_node`` times on each of ``nodes``
        (with ``env`` set for each copy). Every launcher implements it; the default
        raises NotImplementedError."""
        raise NotImplementedError


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True)
class StagedImage:
    """An image ready on this machine: a SIF/squashfs file or an unpacked directory."""

    ref: str
    path: Path
    format: str
    """``sif`` | ``squashfs`` | ``dir`` | ``oci-bundle`` | ``name`` (a runtime-managed image)."""
    digest: str | None = None


@dataclass(frozen=True)
class ContainerContext:
    """Everything a runtime needs to wrap one command."""

    image: StagedImage
    binds: tuple[Bind, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    gpus: tuple[str, ...] = ()
    """GPU UUIDs the command may use."""
    mpi: bool = False
    """Hybrid MPI: the host's MPI launches ranks inside the image."""
    options: Any = None
    """The runtime's own Options from the spec."""


def version_in(text: str) -> str:
    """The first dotted version number in a program's output (``1.2.5-1.el8``), or
    ``unknown``."""
    import re

    match = re.search(r"\d+(?:\.\d+)+[\w.+~-]*", text)
    return match.group(0) if match else "unknown"


@dataclass(frozen=True)
class RuntimeInfo:
    binary: str
    version: str


class ContainerRuntime(_Plugin):
    """Runs a command inside an image."""

    binaries: ClassVar[tuple[str, ...]] = ()
    """Candidate executable names, in order of preference."""
    version_args: ClassVar[tuple[str, ...]] = ("--version",)
    """What to run the binary with to learn its version."""
    version_must_succeed: ClassVar[bool] = True
    """False for runtimes whose version command may fail (the version is then 'unknown')."""

    async def detect(self) -> RuntimeInfo:
        """Find the first of ``binaries`` on PATH and its version; raise
        MissingBinaryError naming the runtime when none is there."""
        found = await find_program(
            self.binaries, self.version_args, purpose=f"the {self.id} container runtime",
            check=self.version_must_succeed, what=self.id,
        )
        self.found_binary = found.name
        return RuntimeInfo(binary=found.path, version=self.parse_version(found.output))

    @staticmethod
    def parse_version(text: str) -> str:
        """The first dotted version number in ``text``, or ``unknown``."""
        return version_in(text)

    async def prepare(self, image: StagedImage, ctx: PilotContext) -> StagedImage:
        """One-time work before the first task (unpack, write a bundle...)."""
        return image

    def wrap(self, argv: Sequence[str], ctx: ContainerContext) -> list[str]:
        """Pure: the argv that runs ``argv`` in ``ctx.image``. Every runtime implements
        it; the default raises NotImplementedError."""
        raise NotImplementedError


# --------------------------------------------------------------------------- stagers


class Stager(_Plugin):
    """Turns an image reference into a local, verified image."""

    schemes: ClassVar[tuple[str, ...]] = ()
    """Reference schemes handled when the spec names no stager (``docker``, ``file``...)."""

    def __init__(self, options: Any) -> None:
        self.options = options

    async def stage(self, ref: str, ctx: PilotContext) -> StagedImage:
        """Make the image ``ref`` available on this machine and return where it is.
        Report progress with ``ctx.emit(StageProgress(...))``. Every stager implements
        it; the default raises NotImplementedError."""
        raise NotImplementedError


# --------------------------------------------------------------------------- apps


class App(_Plugin, abc.ABC):
    """What runs on the allocation: a bag of tasks, a Dask cluster, an MPI job..."""

    runs_images: ClassVar[bool] = False
    """True: the app runs the spec's ``[image]`` itself (k3s preloads it into
    containerd), so a spec may name an image without a ``[container]`` runtime; pilotkit
    then stages nothing and wraps no task, and the app stages it with
    ``spec.stager_cls``."""

    def __init__(self, spec: SpecView, options: Any) -> None:
        self.spec = spec
        self.options = options

    @abc.abstractmethod
    async def run(self, ctx: AppContext) -> None:
        """Deploy and run to completion. Call ``ctx.running()`` once deployed. Return
        when the work is done or ``ctx.draining`` is set and the work has stopped."""

    @classmethod
    def services(cls, workdir: Path) -> list[Service]:
        """What a pilot of this app serves now (a notebook's URL, a cluster's address, a
        dashboard), read from the files it wrote in ``workdir``: the daemon returns them
        with the pilot and the dashboard shows them on its page. Called off the event
        loop; must not raise on missing or half-written files. Default: none."""
        return []


class TaskPool(Protocol):
    """What an app uses of the pilot's task pool (``ctx.pool``).

    The pool places task attempts on the free cores and GPUs of the pilot's nodes, runs
    each again up to its ``retries``, records every result in ``results.jsonl`` and emits
    the task events. An app adds groups of :class:`~pilotkit.api.Task` and waits."""

    @property
    def tasks(self) -> Mapping[str, Task]:
        """Every task added so far, by id; each one's ``status``, ``attempts``, ``node``
        and ``exit_code`` are kept up to date."""
        ...

    @property
    def grace(self) -> float:
        """Seconds between SIGTERM and SIGKILL when a task is stopped."""
        ...

    @property
    def running(self) -> int:
        """How many attempts run now."""
        ...

    @property
    def draining(self) -> bool:
        """True once the pilot stopped starting tasks (drain or cancel)."""
        ...

    def set_gpu_share(self, share: int) -> None:
        """Let ``share`` tasks use one GPU at once; call before adding tasks."""
        ...

    def add_group(self, group: str, tasks: Iterable[Task], total: int | None = None) -> None:
        """Queue ``tasks`` under ``group`` (a group may be added to again); task ids must
        be unique across the pilot. Returns at once. ``tasks`` may be an iterator of
        ``total`` tasks: they are then made as slots come free."""
        ...

    def terminate(self, task_id: str, grace: float | None = None) -> None:
        """Stop one running task (SIGTERM, SIGKILL after ``grace``, default the pool's);
        nothing when it does not run."""
        ...

    async def wait(self) -> None:
        """Until nothing is queued or running (after a drain too)."""
        ...


class PilotContext:
    """What the pilot offers providers, stagers and runtimes."""

    def __init__(
        self,
        pilot_id: str,
        spec: SpecView,
        workdir: Path,
        emit: Callable[[Event], None],
    ) -> None:
        self.pilot_id = pilot_id
        self.spec = spec
        self.workdir = workdir
        self.emit = emit
        self.draining = asyncio.Event()
        self._drain: Callable[[str, bool], None] = lambda reason, terminate: None
        self._join: Callable[[Agent], None] = lambda agent: None
        self.linger = 0.0
        """Seconds a batch pilot's node agents keep running their tasks, keep their
        results and wait for the pilot to come back once its process is gone (the
        daemon sets it: a restarted daemon re-attaches); 0: they stop at once."""

    def request_drain(self, reason: str, terminate: bool = False) -> None:
        """Ask the pilot to drain (a provider relaying the batch system's warning)."""
        self._drain(reason, terminate)

    def join(self, agent: Agent) -> None:
        """Add a node that came after the pilot started (not yet started: the pilot
        starts it), such as a replacement for a lost node; its tasks start there."""
        self._join(agent)


class AppContext:
    """What the pilot offers an app: its nodes, the task pool, events, drain."""

    def __init__(
        self,
        pilot: PilotContext,
        nodes: list[NodeInfo],
        pool: TaskPool,
        mark_running: Callable[[], None],
    ) -> None:
        self.pilot = pilot
        self.nodes = nodes
        self.pool = pool
        self._mark_running = mark_running

    @property
    def draining(self) -> asyncio.Event:
        """Set when the pilot drains or is cancelled: start no more work."""
        return self.pilot.draining

    def running(self) -> None:
        """Tell the pilot the app is deployed and its work has started."""
        self._mark_running()

    def emit(self, event: Event) -> None:
        """Emit a lifecycle event (a :class:`~pilotkit.api.Log`, or the app's own
        :class:`~pilotkit.api.Event` subclass)."""
        self.pilot.emit(event)


# --------------------------------------------------------------------------- search samplers


class SearchTrial(msgspec.Struct, kw_only=True):
    """One trial of an adaptive search, as its sampler records it."""

    number: int
    """0, 1, 2... within the search; the task id is ``<group>-<number>``."""
    params: dict[str, Any]
    state: str = "running"
    """running | complete | pruned | failed."""


class SearchSampler(abc.ABC):
    """Proposes the parameters of an adaptive search's trials (ask) and learns from
    how they ended (tell): registered with ``pilotkit_register_samplers`` under the
    name a spec's ``[app.groups.search] sampler`` gives.

    One instance per search group and run. Its methods block: pilotkit calls them in a
    worker thread, one call at a time. It keeps its state in ``directory`` (inside the
    run's workdir), so that ``pilotkit run --resume`` continues the search: :meth:`open`
    returns the trials recorded there."""

    id: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, search: Any, directory: Path, study: str) -> None:
        self.search = search
        """The group's :class:`pilotkit.api.SearchSpec`."""
        self.directory = directory
        self.study = study
        """A name for the search (the group's name)."""

    @classmethod
    def check(cls, search: Any) -> list[tuple[str, str]]:
        """Problems of ``search`` for this sampler: (key under ``search``, message)."""
        return []

    @abc.abstractmethod
    def open(self) -> list[SearchTrial]:
        """Load (or create) the search's state; the trials an earlier run recorded."""

    @abc.abstractmethod
    def ask(self) -> SearchTrial | None:
        """A new trial (state running); None when the search space is exhausted."""

    def report(self, number: int, step: int, value: float) -> bool:
        """An intermediate value of a running trial's objective; True: prune it."""
        return False

    @abc.abstractmethod
    def tell(self, number: int, state: str, values: list[float] | None) -> None:
        """How a trial ended: ``complete`` with the objective values, ``pruned`` or
        ``failed``."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release what :meth:`open` took."""

    @classmethod
    def html_plots(cls, directory: Path, study: str) -> list[str]:
        """HTML fragments of the sampler's own plots of the search kept in ``directory``
        (``pilotkit results --html``); [] when it has none (the report draws its own)."""
        return []
