"""Finding the test-bed scripts of the project's ``share/`` folder (the Slurm test
cluster, the test sshd) from a test."""

from __future__ import annotations

import os
from pathlib import Path


def share_script(env: str, *parts: str) -> Path:
    """``share/PARTS``: the path in ``$ENV`` when set, else the first one from the working
    directory upwards, else the one beside this pilotkit's source tree."""
    explicit = os.environ.get(env)
    if explicit:
        return Path(explicit)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder.joinpath("share", *parts)
        if candidate.exists():
            return candidate
    return Path(__file__).resolve().parents[2].joinpath("share", *parts)
