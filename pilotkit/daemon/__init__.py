"""The pilotkit daemon: runs pilots headless, keeps their state, serves the control API.

Modules:

- :mod:`~pilotkit.daemon.server`: the lifecycle (start-up, serve, shutdown; signals).
- :mod:`~pilotkit.daemon.runtime_dir`: socket, lock, pid file and token; the state dir.
- :mod:`~pilotkit.daemon.store`: SQLite in WAL mode behind one writer thread.
- :mod:`~pilotkit.daemon.migrations`: the schema, as append-only named migrations.
- :mod:`~pilotkit.daemon.pilots`: :class:`PilotManager`, the coordinator of the parts below.
- :mod:`~pilotkit.daemon.records`: pilot records and their rows (``pilots``, ``attempts``).
- :mod:`~pilotkit.daemon.events`: the event recorder (number, store, fan out, fold).
- :mod:`~pilotkit.daemon.runs`: the live runs (start, follow to the end, stop with the daemon).
- :mod:`~pilotkit.daemon.recovery`: running a pilot again after a restart, or a retry.
- :mod:`~pilotkit.daemon.workdir`: reading a workdir back after a crash.
- :mod:`~pilotkit.daemon.reattach`: the seam for batch pilots that outlive the daemon.
- :mod:`~pilotkit.daemon.views`: what ``status``, ``pilot`` and ``tasks`` return.
- :mod:`~pilotkit.daemon.validation`: the ``validate`` call.
- :mod:`~pilotkit.daemon.faults`: domain errors, and the one table mapping them to protocol errors.
- :mod:`~pilotkit.daemon.dispatch`: the method table and the handlers.
- :mod:`~pilotkit.daemon.stream_methods`: the ``events``, ``metrics`` and ``logs`` streams.
- :mod:`~pilotkit.daemon.transport`: framing, unix and TCP listeners, connections.
- :mod:`~pilotkit.daemon.streams`: bounded subscriptions.
- :mod:`~pilotkit.daemon.metrics`: per-node samples in ring buffers.

Clients use :mod:`pilotkit.client`; the protocol (and where the socket is) is
:mod:`pilotkit.protocol`. Nothing is imported here, so that importing a small module of
this package does not load the daemon.
"""
