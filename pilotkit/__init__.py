"""pilotkit: a pilot for analysis on HPC allocations.

Plugin authors import :mod:`pilotkit.api` (``from pilotkit.api import hookimpl, ...``)
and nothing else of pilotkit; ``pilotkit.testing`` is their test kit.
"""

from __future__ import annotations

from .hookspecs import hookimpl

__version__ = "0.2.0"

__all__ = ["__version__", "hookimpl"]
