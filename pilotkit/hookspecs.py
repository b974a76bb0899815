"""The pilotkit plugin contract.

Every hook is prefixed ``pilotkit_``. Hooks are synchronous; they register *classes*
whose methods are ``async``. A plugin implements them with
:data:`pilotkit.api.hookimpl`::

    from pilotkit.api import hookimpl

    @hookimpl
    def pilotkit_register_launchers(register):
        register(MyLauncher)

and names its module in ``[project.entry-points.pilotkit]`` of its ``pyproject.toml``.
See ``share/docs/plugins.md`` for a complete example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .events import Event
    from .registry import Register
    from .types import ProbeCheck

hookspec = pluggy.HookspecMarker("pilotkit")
hookimpl = pluggy.HookimplMarker("pilotkit")


# ----------------------------------------------------------------- registration hooks


@hookspec
def pilotkit_register_providers(register: Register[Any]) -> None:
    """Register :class:`pilotkit.interfaces.Provider` subclasses (claim and release
    resources: the local machine, Slurm, PBS...).

    :param register: call ``register(cls)`` once per class; ``cls.id`` must be unique.
    """


@hookspec
def pilotkit_register_launchers(register: Register[Any]) -> None:
    """Register :class:`pilotkit.interfaces.Launcher` subclasses (srun, mpirun...).

    :param register: call ``register(cls)`` once per class.
    """


@hookspec
def pilotkit_register_runtimes(register: Register[Any]) -> None:
    """Register :class:`pilotkit.interfaces.ContainerRuntime` subclasses (apptainer,
    sarus, shifter, podman-hpc, oci...).

    :param register: call ``register(cls)`` once per class.
    """


@hookspec
def pilotkit_register_stagers(register: Register[Any]) -> None:
    """Register :class:`pilotkit.interfaces.Stager` subclasses (cvmfs, edge-sync,
    pull, local...).

    :param register: call ``register(cls)`` once per class.
    """


@hookspec
def pilotkit_register_apps(register: Register[Any]) -> None:
    """Register :class:`pilotkit.interfaces.App` subclasses (tasks, dask, mpi...).

    :param register: call ``register(cls)`` once per class.
    """


@hookspec
def pilotkit_register_samplers(register: Register[Any]) -> None:
    """Register :class:`pilotkit.interfaces.SearchSampler` subclasses (the samplers an
    adaptive search's ``sampler`` names: tpe, random... with pilotkit-optuna).

    :param register: call ``register(cls)`` once per class (``register.lazy`` keeps a
        heavy library from loading until a spec uses it).
    """


# ----------------------------------------------------------------- command line


@hookspec
def pilotkit_add_commands(cli: click.Group) -> None:
    """Add commands to the ``pilotkit`` command line.

    :param cli: the top-level click group; call ``cli.add_command(...)``.
    """


# ----------------------------------------------------------------- probe


@hookspec
def pilotkit_probe_checks() -> list[ProbeCheck]:
    """Lines for ``pilotkit probe``: whether this node has what the plugin needs (a
    binary, a kernel feature...), each a :class:`pilotkit.types.ProbeCheck`.

    Called only by ``pilotkit probe``, never while a pilot runs, so it may block briefly
    (read files, look up PATH). Import the module that does the work inside the function,
    so that loading the plugin stays cheap. An implementation that raises becomes one
    ``error`` line naming the plugin.
    """
    return []


# ----------------------------------------------------------------- observers


@hookspec
def pilotkit_event(event: Event) -> None:
    """Called for every lifecycle event of every pilot in this process.

    Must return quickly and never block: it runs on the event loop. An implementation
    that raises is reported and disabled; the pilot goes on.

    :param event: a :class:`pilotkit.events.Event` (see ``pilotkit.events`` for kinds).
    """
