"""The public plugin API: the one module a plugin author imports.

Everything a plugin needs is here, re-exported under a stable name: the hook marker
and hook specifications, the base classes of providers, launchers, container runtimes,
image stagers and apps, the contexts pilotkit hands them, tasks, events, errors, units
and the helpers plugins use (run a command, import asyncssh quietly). Every other
module of pilotkit is private: it may change in any release. ``pilotkit.testing`` is
the test kit for plugin packages.

:data:`API_VERSION` names the plugin API. A plugin declares the pilotkit releases it
was written for in its distribution's requirement (``pilotkit>=0.2,<0.3``);
``pilotkit plugins`` reports a plugin whose requirement the installed pilotkit does
not meet as an error, by name.
"""

from __future__ import annotations

from .errors import CommandError, MissingBinaryError, PilotkitError, PluginError, SpecError, SpecProblem
from .events import (
    Event,
    Log,
    NodeLost,
    NodeReady,
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
    Launcher,
    NoOptions,
    PilotContext,
    Provider,
    RuntimeInfo,
    StagedImage,
    Stager,
    version_in,
)
from .plugins import Register, get_plugins
from .proc import Completed, run_command
from .rendezvous import Rendezvous
from .scan import Distribution, RandomSamples, TaskGroup, TasksOptions, check_groups, parameter_points
from .scan import render as render_command
from .scheduler import Task
from .spec import Duration, ResolvedSpec, Resources, Size
from .ssh import import_asyncssh
from .types import Allocation, GpuInfo, NodeInfo, TaskExit, TaskLaunch
from .units import format_duration, format_size, parse_duration, parse_size, slurm_time
from .vocab import Outcome, PilotState, TaskStatus, attempt_log, task_dir

API_VERSION = "0.2"
"""The plugin API of this release: plugins written for it require ``pilotkit>=0.2,<0.3``."""

__all__ = [
    "API_VERSION",
    "Agent",
    "Allocation",
    "App",
    "AppContext",
    "Bind",
    "CommandError",
    "Completed",
    "ContainerContext",
    "ContainerRuntime",
    "Distribution",
    "Duration",
    "Event",
    "GpuInfo",
    "Launcher",
    "Log",
    "MissingBinaryError",
    "NoOptions",
    "NodeInfo",
    "NodeLost",
    "NodeReady",
    "Outcome",
    "PilotContext",
    "PilotState",
    "PilotkitError",
    "PluginError",
    "Provider",
    "RandomSamples",
    "Register",
    "Rendezvous",
    "ResolvedSpec",
    "Resources",
    "RuntimeInfo",
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
    "TaskStarted",
    "TaskStatus",
    "TasksOptions",
    "attempt_log",
    "check_groups",
    "encode_event",
    "format_duration",
    "format_size",
    "get_plugins",
    "hookimpl",
    "hookspec",
    "import_asyncssh",
    "parameter_points",
    "parse_duration",
    "parse_size",
    "render_command",
    "run_command",
    "slurm_time",
    "task_dir",
    "version_in",
]
