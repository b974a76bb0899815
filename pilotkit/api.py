"""The public plugin API: the one module a plugin author imports.

Everything a plugin needs is here, under a stable name:

- **hooks**: :data:`hookimpl` marks a plugin's hook implementations, :data:`hookspec`
  the specifications (``pilotkit_register_providers``, ``..._launchers``,
  ``..._runtimes``, ``..._stagers``, ``..._apps``, ``pilotkit_add_commands``,
  ``pilotkit_event``, ``pilotkit_probe_checks``); a registration hook gets a :class:`Register`.
- **the classes a plugin implements**: :class:`Provider` (and the :class:`Agent` per
  node it hands out), :class:`Launcher`, :class:`ContainerRuntime`, :class:`Stager`,
  :class:`App`. Every method pilotkit may call is declared on these base classes, typed,
  with a docstring; the optional ones have a default. Nothing is looked up by name.
- **what pilotkit hands them**: :class:`PilotContext`, :class:`AppContext`, the
  :class:`TaskPool` protocol of ``ctx.pool`` and the :class:`Task` it runs,
  :class:`ResolvedSpec`, :class:`Allocation`, :class:`NodeInfo`,
  :class:`ContainerContext`, :class:`StagedImage`, ...
- **events** (:class:`Event` and its kinds), **errors** (:class:`PilotkitError` and its
  kinds), **units** (:func:`parse_duration`, :class:`Duration`, ...).
- **helpers**: :func:`run_command` (a subprocess without blocking the event loop, with
  one-line errors), :func:`import_asyncssh` and :func:`ssh_connect` (SSH without the
  noise of cryptography's deprecation warnings), :func:`connect_daemon` (ask the
  pilotkit daemon, here or over SSH, about its pilots), :class:`ConnectionFile` and
  :func:`pilot_workdir` (the file in which an app publishes how to reach what it serves,
  and how a ``connect`` command finds it; :func:`tunnel_options` gives such a command its
  ``--host``, ``--ssh-config`` and ``--local-port``), :func:`unless_draining`, :func:`watched` and
  :func:`run_watched` (how an app that runs a cluster waits for it and its script),
  :func:`task_exit_report` (how one of its tasks ended, with the tail of its stderr),
  :func:`check_script`, :func:`script_argv` and :func:`python_for` (the user's script an
  app runs in batch mode),
  :class:`Rendezvous` (node agents that
  connect back to the pilot, for batch providers) and the parameter-space helpers of the
  built-in ``tasks`` app (:class:`TaskGroup`, :func:`parameter_points`, :func:`render_command`,
  ...), for apps that expand parameters the same way.

**The rule**: everything that is not in ``pilotkit.api`` (for plugin code) or
``pilotkit.testing`` (for plugin tests) is private, whatever its name: any other module of
pilotkit may change in any release. A plugin imports nothing else of pilotkit.

:data:`API_VERSION` names the plugin API. A plugin declares the pilotkit releases it
was written for in its distribution's requirement (``pilotkit>=0.2,<0.3``);
``pilotkit plugins`` reports a plugin whose requirement the installed pilotkit does
not meet as an error, by name, and does not load it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from .appflow import run_watched, task_exit_report, unless_draining, watched
from .appscript import check_script, python_for, script_argv
from .connfile import ConnectionFile, pilot_workdir, tunnel_options
from .errors import CommandError, MissingBinaryError, PilotkitError, PluginError, SpecError, SpecProblem
from .events import (
    AllocationClaimed,
    AppProgress,
    Event,
    GroupAdded,
    Log,
    Metrics,
    NodeLost,
    NodeReady,
    PilotStateChanged,
    StageProgress,
    TaskCancelled,
    TaskFinished,
    TaskStarted,
)
from .events import encode as encode_event
from .hookspecs import hookimpl, hookspec
from .interfaces import (
    Agent,
    App,
    AppContext,
    Bind,
    ContainerContext,
    ContainerRuntime,
    ExitCallback,
    Launcher,
    NoOptions,
    PilotContext,
    Provider,
    RuntimeInfo,
    SearchSampler,
    SearchTrial,
    StagedImage,
    Stager,
    TaskPool,
    version_in,
)
from .plugins import Register, get_plugins
from .proc import Completed, run_command
from .registry import lazy_exports
from .rendezvous import Rendezvous
from .scan import (
    Distribution,
    RandomSamples,
    SearchSpec,
    TaskGroup,
    TasksOptions,
    check_groups,
    parameter_points,
)
from .scan import render as render_command
from .search import SearchRun
from .spec import Duration, ResolvedSpec, Resources, Size
from .ssh import forward_port, import_asyncssh, read_remote_file, ssh_connect, ssh_session, until_interrupted
from .task import Task
from .types import Allocation, GpuInfo, NodeInfo, ProbeCheck, Service, TaskExit, TaskLaunch
from .units import format_duration, format_size, parse_duration, parse_size, slurm_time
from .vocab import Outcome, PilotState, TaskStatus, attempt_log, task_dir

if TYPE_CHECKING:
    from .client import Client

API_VERSION = "0.2"
"""The plugin API of this release: plugins written for it require ``pilotkit>=0.2,<0.3``."""


def connect_daemon(host: str | None = None, **options: Any) -> AbstractAsyncContextManager[Client]:
    """``async with connect_daemon() as client:`` a client of the pilotkit daemon here, or
    on ``host`` (``[user@]host``, over SSH; ``ssh_config=`` names an SSH config file).
    ``await client.pilot(pilot_id)`` describes one pilot (``.summary.workdir``...).
    Failing to connect raises a one-line :class:`PilotkitError`."""
    from .client import connect

    return connect(host, **options)


__all__ = [
    "API_VERSION",
    "Agent",
    "Allocation",
    "AllocationClaimed",
    "App",
    "AppContext",
    "AppProgress",
    "Bind",
    "CommandError",
    "Completed",
    "ConnectionFile",
    "ContainerContext",
    "ContainerRuntime",
    "Distribution",
    "Duration",
    "Event",
    "ExitCallback",
    "GpuInfo",
    "GroupAdded",
    "Launcher",
    "Log",
    "Metrics",
    "MissingBinaryError",
    "NoOptions",
    "NodeInfo",
    "NodeLost",
    "NodeReady",
    "Outcome",
    "PilotContext",
    "PilotState",
    "PilotStateChanged",
    "PilotkitError",
    "PluginError",
    "ProbeCheck",
    "Provider",
    "RandomSamples",
    "Register",
    "Rendezvous",
    "ResolvedSpec",
    "Resources",
    "RuntimeInfo",
    "SearchRun",
    "SearchSampler",
    "SearchSpec",
    "SearchTrial",
    "Service",
    "Size",
    "SpecError",
    "SpecProblem",
    "StageProgress",
    "StagedImage",
    "Stager",
    "Task",
    "TaskCancelled",
    "TaskExit",
    "TaskFinished",
    "TaskGroup",
    "TaskLaunch",
    "TaskPool",
    "TaskStarted",
    "TaskStatus",
    "TasksOptions",
    "attempt_log",
    "check_groups",
    "check_script",
    "connect_daemon",
    "encode_event",
    "format_duration",
    "format_size",
    "forward_port",
    "get_plugins",
    "hookimpl",
    "hookspec",
    "import_asyncssh",
    "lazy_exports",
    "parameter_points",
    "parse_duration",
    "parse_size",
    "pilot_workdir",
    "python_for",
    "read_remote_file",
    "render_command",
    "run_command",
    "run_watched",
    "script_argv",
    "slurm_time",
    "ssh_connect",
    "ssh_session",
    "task_dir",
    "task_exit_report",
    "tunnel_options",
    "unless_draining",
    "until_interrupted",
    "version_in",
    "watched",
]
