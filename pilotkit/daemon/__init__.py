"""The pilotkit daemon: runs pilots headless, keeps their state, serves the control API.

Modules:

- :mod:`~pilotkit.daemon.server`: the lifecycle (start-up, serve, shutdown; signals).
- :mod:`~pilotkit.daemon.runtime_dir`: socket, lock, pid file and token; the state dir.
- :mod:`~pilotkit.daemon.store`: SQLite in WAL mode behind one writer thread.
- :mod:`~pilotkit.daemon.migrations`: the schema, as append-only named migrations.
- :mod:`~pilotkit.daemon.pilots`: pilot records, live runs, event recording, recovery.
- :mod:`~pilotkit.daemon.recovery`: reading a workdir back after a crash.
- :mod:`~pilotkit.daemon.reattach`: the seam for batch pilots that outlive the daemon.
- :mod:`~pilotkit.daemon.dispatch`: the method table and the handlers.
- :mod:`~pilotkit.daemon.transport`: framing, unix and TCP listeners, connections.
- :mod:`~pilotkit.daemon.streams`: bounded subscriptions.
- :mod:`~pilotkit.daemon.metrics`: per-node samples in ring buffers.

Clients use :mod:`pilotkit.client`; the protocol (and where the socket is) is
:mod:`pilotkit.protocol`. Nothing is imported here, so that importing a small module of
this package does not load the daemon.
"""
