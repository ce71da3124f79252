"""The Batch API at scale: 100,000 rows in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from .harness import NO_DELAYS, Row, ServerProcess

BATCH_CLIENT = """
import json, os, sys, threading, time
import pandas as pd
from IPython.core.interactiveshell import InteractiveShell

url, key, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "mistral_magic")
shell.run_line_magic("config", f"MistralMagics.server_url = {url!r}")
shell.run_line_magic("config", f"MistralMagics.server_key = {key!r}")
schema = "item, price float, stars int"
# Every import, the tokenizer and the store warmed by a two-row job, outside the measure.
warm = pd.DataFrame({"text": ["A lamp for 10 euros, 4 stars.", "A desk for 90 euros, 2 stars."]})
warm.mistral.extract("{text}", schema=schema, batch=True, progress=False)
df = pd.DataFrame({"text": [f"Item {i}: a lamp for {10 + i % 90} euros, {i % 5 + 1} stars, "
                            f"sold in shop {i % 37}." for i in range(rows)]})
frame_mb = df.memory_usage(deep=True).sum() / 2**20
base, peak = rss_mb(), [0.0]
done = threading.Event()


def sample():
    while not done.wait(0.02):
        peak[0] = max(peak[0], rss_mb())


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start = time.perf_counter()
out = df.mistral.extract("{text}", schema=schema, batch=True, progress=False)
wall = time.perf_counter() - start
done.set()
sampler.join()
peak[0] = max(peak[0], rss_mb())
print(json.dumps({
    "rows": rows, "wall_s": wall, "frame_mb": frame_mb, "rss_before_mb": base,
    "rss_peak_mb": peak[0], "growth_mb": peak[0] - base,
    "result_mb": out.memory_usage(deep=True).sum() / 2**20,
    "failed_rows": int(out["_error"].notna().sum()), "aligned": bool(out.index.equals(df.index)),
}))
"""


def bench_batch(quick: bool) -> dict:
    """An extraction of 100,000 rows (10,000 with --quick) with batch=True against the offline
    server in its own process, the client in a fresh one: wall time and the client's RSS peak
    above what it held with the DataFrame built."""

    rows = 10_000 if quick else 100_000
    print(f"batch: {rows:,} rows through the offline server's Batch API ...", file=sys.stderr)
    with ServerProcess(*NO_DELAYS) as server, tempfile.TemporaryDirectory() as folder:
        # A folder of its own: the client's store (.mistral_magic/) lands there.
        done = subprocess.run([sys.executable, "-c", BATCH_CLIENT, server.url, server.api_key, str(rows)],
                              capture_output=True, text=True, check=True, cwd=folder)
    return json.loads(done.stdout.strip().splitlines()[-1])


def batch_rows(b: dict) -> list[Row]:
    growth = b["growth_mb"]
    failed = f", {b['failed_rows']:,} rows failed" if b["failed_rows"] else ""
    return [
        Row(f"extract {b['rows']:,} rows, batch=True: client RSS growth{failed}",
            f"peak {b['rss_peak_mb']:.0f} MB from {b['rss_before_mb']:.0f} MB "
            f"(DataFrame {b['frame_mb']:.0f} MB, result {b['result_mb']:.0f} MB)",
            f"{growth:.0f} MB", "1 run", "", "< 500 MB above the DataFrame"),
        Row("  same, wall time (plan, upload, jobs, read back)", "",
            f"{b['wall_s']:.1f} s", "1 run", "", "printed"),
    ]


