"""pilotkit: a pilot for analysis on HPC allocations.

Plugins need only ``import pilotkit`` and ``@pilotkit.hookimpl``.
"""

from __future__ import annotations

from .hookspecs import hookimpl

__version__ = "0.2.0"

__all__ = ["__version__", "hookimpl"]
