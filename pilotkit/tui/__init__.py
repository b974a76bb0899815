"""``pilotkit tui``: the live terminal dashboard (Textual).

The dashboard is a client of the daemon's control API (:mod:`pilotkit.client`) or of a
recorded event log; it reads only typed data from the core (:mod:`pilotkit.events`,
:mod:`pilotkit.protocol`, :mod:`pilotkit.progress`, :mod:`pilotkit.units`).

Layers, each knowing only the one below:

- :mod:`~pilotkit.tui.model`: plain data folded from events, summaries and metric
  samples (no Textual); the clock is the events' in a replay.
- :mod:`~pilotkit.tui.source`: the data-source contract, with two implementations:
  :mod:`~pilotkit.tui.live` (the daemon, reconnecting with capped back-off) and
  :mod:`~pilotkit.tui.replay` (a JSON-lines event log, at a speed or at once).
- :mod:`~pilotkit.tui.app`, :mod:`~pilotkit.tui.screens`, :mod:`~pilotkit.tui.widgets`:
  the Textual side, refreshed from the model at most ten times a second.

Nothing is imported here: the ``pilotkit tui`` command (:mod:`pilotkit.cli.tui`) imports
the dashboard, and with it Textual, only when it runs. Nothing here imports the CLI.
"""
