"""The daemon's parts import each other in one direction only, ``TYPE_CHECKING`` imports
included: records below events, runs, recovery and views; the coordinator above them;
the dispatcher on top."""

from __future__ import annotations

import itertools

import grimp


def test_no_import_circles_between_daemon_modules() -> None:
    graph = grimp.build_graph("pilotkit", cache_dir=None)
    modules = sorted(m for m in graph.find_children("pilotkit.daemon"))
    circles = [
        (a, b) for a, b in itertools.combinations(modules, 2)
        if graph.chain_exists(importer=a, imported=b) and graph.chain_exists(importer=b, imported=a)
    ]
    assert circles == []


def test_the_parts_sit_below_the_coordinator() -> None:
    graph = grimp.build_graph("pilotkit", cache_dir=None)
    layers = ["dispatch", "stream_methods", "pilots", "recovery", "views", "runs", "events", "records", "faults"]
    for upper, lower in itertools.combinations(layers, 2):
        assert not graph.chain_exists(importer=f"pilotkit.daemon.{lower}", imported=f"pilotkit.daemon.{upper}"), (
            f"{lower} imports {upper}"
        )
    assert not graph.chain_exists(importer="pilotkit.daemon.reattach", imported="pilotkit.daemon.pilots")
