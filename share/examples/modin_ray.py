"""A Modin data-frame job on Ray: the pandas API, with the frame split into partitions
that are Ray tasks spread over the pilot's Ray nodes.

Makes a table of synthetic collision events (run, number of jets, missing transverse
energy), writes it as CSV, reads it back with ``modin.pandas``, selects events, and sums
them per run and jet count. Checks the answer against plain pandas, writes summary.json
(the selection's counts, the Ray cluster's resources) and exits 1 when Modin's answer
differs. Run by ``modin-ray.toml``: RAY_ADDRESS is set by the pilot.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas
import ray


def make_events(rows: int, seed: int) -> pandas.DataFrame:
    """The synthetic events: run number, jet count, missing transverse energy (GeV)."""
    rng = np.random.default_rng(seed)
    return pandas.DataFrame(
        {
            "run": rng.integers(1000, 1010, rows),
            "njets": rng.poisson(3.0, rows),
            "met": rng.exponential(40.0, rows).round(3),
        }
    )


def summarise(pd: object, path: Path, min_met: float) -> pandas.DataFrame:
    """Events above ``min_met`` per (run, njets): their count and mean MET, with the
    data-frame library ``pd`` (``modin.pandas`` or ``pandas``)."""
    frame = pd.read_csv(path)  # type: ignore[attr-defined]
    selected = frame[frame["met"] > min_met]
    table = selected.groupby(["run", "njets"])["met"].agg(["count", "mean"]).reset_index()
    if hasattr(table, "_to_pandas"):
        table = table._to_pandas()  # Modin -> pandas, to compare
    return table.sort_values(["run", "njets"]).reset_index(drop=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--min-met", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ray.init()  # connects to the pilot's cluster (RAY_ADDRESS); Modin then uses it
    import modin.config
    import modin.pandas

    modin.config.Engine.put("ray")
    path = Path("events.csv").resolve()
    make_events(args.rows, args.seed).to_csv(path, index=False)
    with_modin = summarise(modin.pandas, path, args.min_met)
    with_pandas = summarise(pandas, path, args.min_met)
    same = with_modin.shape == with_pandas.shape and bool(
        (with_modin[["run", "njets", "count"]].to_numpy() == with_pandas[["run", "njets", "count"]].to_numpy()).all()
        and np.allclose(with_modin["mean"].to_numpy(), with_pandas["mean"].to_numpy())
    )
    summary = {
        "rows": args.rows,
        "selected": int(with_modin["count"].sum()),
        "groups": len(with_modin),
        "same_as_pandas": same,
        "partitions": int(modin.config.NPartitions.get()),
        "resources": ray.cluster_resources(),
    }
    Path("summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{summary['selected']} of {args.rows} events in {summary['groups']} (run, njets) groups, "
          f"{summary['partitions']} partitions; same as pandas: {same}")
    ray.shutdown()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
