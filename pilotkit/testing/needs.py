"""Skip a test, or fail it under ``PILOTKIT_REQUIRE_REAL=1`` (CI), when a real component
it needs is missing."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_REAL_ENV = "PILOTKIT_REQUIRE_REAL"


def require_real() -> bool:
    """True when a missing real component must fail the run instead of skipping (CI)."""
    return os.environ.get(REQUIRE_REAL_ENV, "") not in ("", "0", "false", "no")


def need(what: str, available: bool, hint: str = "") -> None:
    """Skip (or, under PILOTKIT_REQUIRE_REAL=1, fail) when ``what`` is not available.

    Use only for components that can run on a CI machine (Slurm, OpenMPI, sshd, runc,
    tmux, Dask). For things that cannot exist there (a GPU, Apptainer...) use
    :func:`need_optional`, which always skips.
    """
    if available:
        return
    message = f"{what} is not available" + (f": {hint}" if hint else "")
    if require_real():
        pytest.fail(f"{message} ({REQUIRE_REAL_ENV}=1 requires it)", pytrace=False)
    pytest.skip(message)


def need_binary(binary: str, hint: str = "") -> str:
    """The path of ``binary``, or skip/fail as :func:`need` does."""
    path = shutil.which(binary)
    need(f"'{binary}'", path is not None, hint or "not on PATH")
    assert path is not None
    return path


def need_optional(what: str, available: bool, hint: str = "") -> None:
    """Skip when a component that cannot run on CI machines (a GPU, Apptainer, Sarus,
    Shifter, k3s) is missing; never fails."""
    if not available:
        pytest.skip(f"{what} is not available" + (f": {hint}" if hint else ""))
