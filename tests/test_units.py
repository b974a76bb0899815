from __future__ import annotations

import pytest

from pilotkit.units import parse_duration, parse_size, slurm_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("01:30:00", 5400.0),
        ("1-12:00:00", 129600.0),
        ("05:00", 300.0),
        ("1.5", 1.5),
        ("250ms", 0.25),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "1:2:3:4", "-5", "1h 2q"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [(1024, 1024), ("512M", 512 * 2**20), ("4GiB", 4 * 2**30), ("2GB", 2 * 10**9), ("1.5G", 3 * 2**29)],
)
def test_sizes(text: str | int, nbytes: int) -> None:
    assert parse_size(text) == nbytes


def test_slurm_time() -> None:
    assert slurm_time(5400) == "01:30:00"
    assert slurm_time(90061) == "1-01:01:01"


async def test_run_command_timeout_stops_the_commands_children() -> None:
    import time

    from pilotkit.errors import PilotkitError
    from pilotkit.proc import run_command

    t0 = time.monotonic()
    with pytest.raises(PilotkitError, match=r"did not finish within 0\.5s"):
        # The shell's child keeps the output pipe open; it must die with the shell.
        await run_command(["sh", "-c", "sleep 30; echo done"], timeout=0.5)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("value", [90, 90.0, "90", " 90 ", "1.5"])
def test_bare_number_refused_where_a_unit_is_required(value: str | float) -> None:
    with pytest.raises(ValueError, match=r"has no unit: write '.*s' or '.*m'"):
        parse_duration(value, require_unit=True)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90.0), ("90m", 5400.0), ("01:30:00", 5400.0)])
def test_units_accepted_where_required(text: str, seconds: float) -> None:
    assert parse_duration(text, require_unit=True) == seconds
