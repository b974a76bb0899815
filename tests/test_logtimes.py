"""When task output lines were written (pilotkit.logtimes): the agent's samples, read back."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from pilotkit.agent import LocalAgent
from pilotkit.logtimes import Samples, newlines, sample, times_path
from pilotkit.types import NodeInfo, TaskExit, TaskLaunch


def test_samples_bound_each_line_by_the_first_look_past_it(tmp_path: Path) -> None:
    out = tmp_path / "attempt-1.out"
    times_path(out).write_text("1.0 999\n")  # stale, of an earlier run: started anew
    out.write_bytes(b"a\nb\n")
    os.utime(out, ns=(0, 100 * 10**9))
    known = sample([str(out)], {})
    assert known == {str(out): 4}
    assert sample([str(out)], known) == {}  # not grown: nothing appended
    with open(out, "ab") as f:
        f.write(b"c\npartial")
    os.utime(out, ns=(0, 105 * 10**9))
    sample([str(out)], known)
    samples = Samples(out)
    assert samples.refresh() and samples.sizes == [4, 13]
    data = out.read_bytes()
    assert samples.stamp(newlines(data, 0)) == [100.0, 100.0, 105.0]
    assert samples.stamp([20]) == [None]  # past the last look: unknown
    assert samples.stamp([20], (107.0, 30)) == [107.0]  # the file's own last write
    assert not Samples(tmp_path / "none").refresh()


async def test_agent_records_write_times_of_a_real_task(tmp_path: Path) -> None:
    agent = LocalAgent(NodeInfo(name="n", cores=1, memory=1 << 30))
    await agent.start()
    out, err = tmp_path / "attempt-1.out", tmp_path / "attempt-1.err"
    script = "import time; print('first', flush=True); time.sleep(1.6); print('second', flush=True)"
    ended: asyncio.Future[TaskExit] = asyncio.get_running_loop().create_future()
    launch = TaskLaunch(task_id="t", attempt=1, argv=[sys.executable, "-c", script], cwd=str(tmp_path),
                        stdout=str(out), stderr=str(err))
    agent.launch(launch, ended.set_result)
    result = await asyncio.wait_for(ended, 20)
    await agent.stop(1.0)  # the last look at the ended attempt's files
    assert result.status == "ok"
    samples = Samples(out)
    assert samples.refresh() and not times_path(err).exists()  # nothing written: no samples
    first, second = samples.stamp(newlines(out.read_bytes(), 0))
    assert first is not None and second is not None
    assert result.start - 0.05 <= first <= result.start + 1.5  # at most a look late
    assert 1.0 <= second - first <= 2.7
    assert second <= result.end and time.time() - first > 1.5  # written, not read, times
