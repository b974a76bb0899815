"""How a job that ended while its pilot ran is reported: the pilot's state and who ended it."""

from __future__ import annotations

import pytest
from pilotkit_batch.base import outside_end
from pilotkit_batch.jobstate import JobInfo, JobState
from pilotkit_batch.slurm import parse_squeue

from pilotkit.api import PilotState


@pytest.mark.parametrize(
    ("state", "word", "words"),
    [
        (JobState.CANCELLED, "cancelled", "cancelled from outside the pilot"),
        (JobState.PREEMPTED, "cancelled", "preempted"),
        (JobState.WALLTIME_EXPIRED, "walltime-expired", "walltime ran out"),
        (JobState.NODE_FAIL, "failed", "node failure"),
        (JobState.OUT_OF_MEMORY, "failed", "more memory"),
        (JobState.DONE, "failed", "allocation vanished"),
    ],
)
def test_each_end_says_what_happened(state: JobState, word: str, words: str) -> None:
    said = outside_end("Slurm", "12", JobInfo(state=state))
    assert said.startswith(f"{word}: Slurm job 12 ") and words in said


def test_the_pilot_takes_the_state_and_the_reason() -> None:
    from pilotkit.pilot import outside_end as pilot_end

    info = parse_squeue("NODE_FAIL|NodeFail|node[1-3]|0:00\n")
    assert info is not None
    kind, reason = pilot_end(outside_end("Slurm", "7", info))
    assert kind is PilotState.FAILED and "node failure" in reason and "\n" not in reason
    assert pilot_end("cancelled") == (PilotState.CANCELLED, "allocation ended: cancelled")
    assert pilot_end("walltime-expired")[0] is PilotState.WALLTIME_EXPIRED
    assert pilot_end("something odd")[0] is PilotState.FAILED


def test_the_controller_address_from_scontrol() -> None:
    from pilotkit_batch.slurm import parse_controller

    text = "SlurmctldAddr           = (null)\nSlurmctldHost[0]        = vm(10.213.0.1)\n"
    assert parse_controller(text) == "10.213.0.1"
    assert parse_controller("SlurmctldHost[0] = head01\n") == "head01"
    assert parse_controller("nothing here\n") is None


def test_a_loopback_callback_address_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from pilotkit_batch.base import BatchOptions, callback_host

    from pilotkit.api import PilotkitError

    monkeypatch.delenv("PILOTKIT_CALLBACK_HOST", raising=False)
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost")
    with pytest.raises(PilotkitError) as raised:
        callback_host(BatchOptions(), None)
    assert "[provider] callback_host" in str(raised.value) and "\n" not in str(raised.value)
    assert callback_host(BatchOptions(callback_host="login1"), None) == "login1"
