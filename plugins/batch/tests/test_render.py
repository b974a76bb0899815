"""Template rendering: strict substitution, quoting, blocks; and BatchJob."""

from __future__ import annotations

import string
from typing import Any

import pytest
from pilotkit_batch.job import BatchJob, hms, memory_text
from pilotkit_batch.render import directive, load_template, quote_value, render

from pilotkit.spec import PilotSection, PilotSpec, ResolvedSpec, Resources


def test_render_quotes_values_and_joins_argv() -> None:
    tmpl = string.Template("name=${name}\nrun ${argv}\n")
    text = render(tmpl, {"name": "a b", "argv": ["echo", "it's", "$HOME"]})
    assert text == "name='a b'\nrun echo 'it'\"'\"'s' '$HOME'\n"


def test_render_refuses_a_missing_value() -> None:
    with pytest.raises(KeyError, match="other"):
        render(string.Template("${name} ${other}"), {"name": "x"})


def test_render_refuses_a_value_without_placeholder() -> None:
    with pytest.raises(ValueError, match="no placeholder for: extra"):
        render(string.Template("${name}"), {"name": "x", "extra": "y"})


def test_render_drops_the_line_of_an_empty_block() -> None:
    tmpl = string.Template("a\n${block}\nb\n")
    assert render(tmpl, {}, {"block": []}) == "a\nb\n"
    assert render(tmpl, {}, {"block": ["x", "y"]}) == "a\nx\ny\nb\n"


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\\b"])
def test_directive_values_refuse_what_a_directive_line_cannot_carry(value: str) -> None:
    with pytest.raises(ValueError, match="--job-name"):
        directive("#SBATCH", "--job-name", value)


def test_shell_lines_accept_backslashes() -> None:
    assert directive("export", "PATTERN", "a\\d+") == "export PATTERN='a\\d+'"
    assert quote_value("x", "a\\b", shell_only=True) == "'a\\b'"


def test_templates_ship_with_the_package() -> None:
    for name in ("slurm.sh.tmpl", "pbs.sh.tmpl", "lsf.sh.tmpl", "htcondor.sub.tmpl"):
        assert load_template(name).is_valid()


def _job(**changes: object) -> BatchJob:
    fields: dict[str, object] = {
        "name": "pilot",
        "command": ["pilotkit", "agent"],
        "workdir": "/w",
        "output": "/w/out",
        "error": "/w/err",
    }
    fields.update(changes)
    return BatchJob(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": " "}, "needs a name"),
        ({"command": []}, "needs a command"),
        ({"nodes": 0}, "nodes must be at least 1"),
        ({"cores": 0}, "cores must be at least 1"),
        ({"gpus": -1}, "gpus cannot be negative"),
        ({"memory": 0}, "memory must be positive"),
        ({"walltime": 0.0}, "walltime must be positive"),
        ({"signal_margin": -1.0}, "signal_margin cannot be negative"),
        ({"env": {"1BAD": "x"}}, "not a valid environment variable name"),
    ],
)
def test_batch_job_refuses_nonsense(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _job(**changes)


def test_batch_job_from_resources_parses_units() -> None:
    resources = Resources(nodes=2, cores=4, memory="1536M", gpus=1, walltime="1h30m", partition="gpu")
    job = BatchJob.from_resources(
        resources, name="p", command=["a"], workdir="/w", output="/w/o", error="/w/e", signal_margin=90
    )
    assert (job.nodes, job.cores, job.gpus, job.partition) == (2, 4, 1, "gpu")
    assert job.memory == 1536 * 1024**2
    assert job.memory_mib == 1536
    assert job.walltime == 5400.0
    assert job.signal_margin == 90
    assert not job.whole_nodes


def test_batch_job_from_spec_takes_name_and_drain_margin() -> None:
    spec = PilotSpec(
        name="zjets",
        resources=Resources(walltime="2h", exclusive=True),
        pilot=PilotSection(drain_margin="5m"),
    )
    no_plugin: Any = object
    resolved = ResolvedSpec(
        spec=spec,
        source=None,
        provider_cls=no_plugin,
        provider_options=None,
        app_cls=no_plugin,
        app_options=None,
    )
    job = BatchJob.from_spec(resolved, command=["a"], workdir="/w", output="/w/o", error="/w/e")
    assert (job.name, job.walltime, job.signal_margin, job.whole_nodes) == ("zjets", 7200.0, 300.0, True)


def test_units_for_batch_systems() -> None:
    assert memory_text(4 * 1024**3) == "4G"
    assert memory_text(1536 * 1024**2) == "1536M"
    assert memory_text(1000) == "1M"
    assert memory_text(2 * 1024**3, units=("gb", "mb")) == "2gb"
    assert hms(90) == "00:01:30"
    assert hms(100 * 3600 + 0.2) == "100:00:01"
