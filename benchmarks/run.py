"""Speed and size figures, each a ratio against a baseline measured in the same run.

    python benchmarks/run.py [--quick] [--json PATH]

Prints a table and writes JSON (default benchmarks/results/latest.json) with every
run's figures. Each row shows its median, the spread of its runs (min-max, and the
interquartile range where there are enough runs), the worst run where a target
caps it, and the target. Nothing here passes or fails on speed: the targets are
printed beside the figures.

The machine these run on is shared and its speed drifts by tens of percent, so:
- a %%mistral stream is paired with an SDK stream run next to it, the order inside
  a pair alternating (the one that goes second gets a warmer machine), and the
  figure is the median of the paired ratios; the "measured" column shows the pair
  that gives that median, so the two columns agree;
- the spread says how far to trust a median: a target met by the median but not
  by the spread is met by luck.

Each benchmark is a module of `bench/` (its `bench_x(quick) -> dict`, every run kept in
the dict, and `x_rows(results) -> list[Row]`); `bench/harness.py` has what they share
(rows, spreads, pairing, the offline server in its own process, the table). Adding a
row: a new module, or a new function in one, and an entry in SECTIONS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import batch, coldstart, embed, extract, lab, load, paced, paces, server, stream
from bench.harness import Row, table

HERE = Path(__file__).resolve().parent

# (key in the JSON, benchmark, its rows in the table): a new row is one more entry.
SECTIONS: list[tuple[str, Callable[[bool], dict], Callable[[dict], list[Row]]]] = [
    ("server", server.bench_server, server.server_rows),
    ("load", load.bench_load, load.load_rows),
    ("stream", stream.bench_stream, stream.stream_rows),
    ("paces", paces.bench_paces, paces.paces_rows),
    ("extract", extract.bench_extract, extract.extract_rows),
    ("paced", paced.bench_paced, paced.paced_rows),
    ("embed", embed.bench_embed, embed.embed_rows),
    ("coldstart", coldstart.bench_coldstart, coldstart.coldstart_rows),
    ("batch", batch.bench_batch, batch.batch_rows),
    # Codestral completion in a real JupyterLab.
    ("lab", lab.bench_lab, lab.lab_rows),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (CI)")
    parser.add_argument("--json", default=str(HERE / "results" / "latest.json"))
    parser.add_argument("--only", nargs="+", choices=[key for key, _, _ in SECTIONS],
                        help="run only these sections")
    args = parser.parse_args(argv)

    path = Path(args.json).absolute()
    results: dict = {"quick": args.quick, "python": sys.version.split()[0]}
    rows: list[Row] = []
    # The shells and kernels benchmarked keep their response cache (.mistral_magic/) in
    # the working directory: a temporary one, so no run is answered by an earlier one's
    # cache and nothing is left in the repository.
    with tempfile.TemporaryDirectory(prefix="mistral-magic-bench-") as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            for key, bench, to_rows in SECTIONS:
                if args.only and key not in args.only:
                    continue
                results[key] = bench(args.quick)
                rows.extend(to_rows(results[key]))
        finally:
            os.chdir(here)
    print(table(rows))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
