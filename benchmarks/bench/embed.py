"""Embedding packs short texts 512 to a request, with bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys

from .harness import NO_DELAYS, Row, ServerProcess, ratio_x, spread_text, summary

# Run in a fresh Python so that its peak memory is this run's own. It embeds `rows` short
# texts through df.mistral.embed, then the same texts straight through the SDK (512 a
# request, the same concurrency) as the baseline, and prints one JSON line.
EMBED_RUN = """
import asyncio, json, resource, sys, time
import pandas as pd
from IPython.core.interactiveshell import InteractiveShell
from mistralai.client import Mistral
import mistral_magic

url, key, rows, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "mistral_magic")
shell.run_line_magic("config", f"MistralMagics.server_url = {url!r}")
shell.run_line_magic("config", f"MistralMagics.server_key = {key!r}")
texts = [f"Ticket {i}: my order {i % 977} arrived late, please check item {i % 131}"
         for i in range(rows)]
df = pd.DataFrame({"text": texts})
session = mistral_magic.session()
session.cache.clear()  # an earlier run's rows would leave the tokenizer cold
df.head(2).mistral.embed("text", progress=False)  # the tokenizer and the client, warmed
session.cache.clear()
calls = len(session.ledger)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

def high_water_mark():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

before = rss()
# The peak from here on: loading the tokenizer or pandas earlier may have peaked higher.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # Linux: the resident set's high-water mark starts again from now
start = time.perf_counter()
out = df.mistral.embed("text", concurrency=concurrency, progress=False)
embed_s = time.perf_counter() - start
peak = high_water_mark()
vector_bytes = sum(v.nbytes for v in out["text_embedding"])
failed = int(out["_error"].notna().sum())
requests = len(session.ledger) - calls
del out
session.cache.clear()

async def direct():
    sdk = Mistral(api_key=key, server_url=url)
    gate = asyncio.Semaphore(concurrency)

    async def one(chunk):
        async with gate:
            response = await sdk.embeddings.create_async(model="mistral-embed", inputs=chunk)
            return len(response.data)

    chunks = [texts[i:i + 512] for i in range(0, rows, 512)]
    return sum(await asyncio.gather(*(one(c) for c in chunks)))

start = time.perf_counter()
assert asyncio.run(direct()) == rows
sdk_s = time.perf_counter() - start
print(json.dumps({"embed_s": embed_s, "sdk_s": sdk_s, "requests": requests, "failed": failed,
                  "peak_growth_bytes": peak - before, "vector_bytes": vector_bytes}))
"""


def bench_embed(quick: bool) -> dict:
    """Targets (issue 27): the SDK alone pays the same transfer and JSON parsing, so the
    engine's own work per row (a token count, a cache key, the store's base64 written in
    a worker thread) keeps it at 0.95x or better; short texts fill requests to the API's
    512 inputs (the last one less); memory grows by the vectors (written once into one
    array) and the responses in flight: 2x at most. For that the engine sends fewer
    requests at once than `concurrency` when their replies would hold more than the
    vectors (`Embedding.calls_at_once`: 2 here; the SDK baseline keeps 8)."""
    rows, concurrency = (10_000 if quick else 100_000), 8  # the engine's default
    runs = []
    with ServerProcess(*NO_DELAYS) as server:
        for _ in range(2 if quick else 3):
            out = subprocess.run(
                [sys.executable, "-c", EMBED_RUN, server.url, server.api_key, str(rows),
                 str(concurrency)], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for run in runs:
        run["rows_per_s"] = rows / run["embed_s"]
        run["ratio"] = run["sdk_s"] / run["embed_s"]  # above 1: as fast as the SDK alone
        run["memory_ratio"] = run["peak_growth_bytes"] / run["vector_bytes"]
    return {"rows": rows, "concurrency": concurrency, "runs": runs,
            "rows_per_s": summary([r["rows_per_s"] for r in runs]),
            "ratio": summary([r["ratio"] for r in runs]),
            "memory_ratio": summary([r["memory_ratio"] for r in runs])}


def embed_rows(em: dict) -> list[Row]:
    rows, last = em["rows"], em["runs"][-1]
    per_request = rows / last["requests"]
    rate, ratio, memory = em["rows_per_s"], em["ratio"], em["memory_ratio"]
    return [
        Row(f"embed {rows:,} short texts (concurrency {em['concurrency']}, fewer at once "
            "for memory)"
            + (f" ({last['failed']} rows failed)" if last["failed"] else ""),
            f"{rate['median']:,.0f} rows/s vs SDK alone {rows / last['sdk_s']:,.0f} rows/s",
            ratio_x(ratio["median"]), spread_text(ratio, ratio_x), ratio_x(ratio["min"]),
            ">= 0.95x"),
        Row("  requests sent for those rows", f"{last['requests']:,} requests",
            f"{per_request:,.0f} rows/request", "", "", ">= 500 rows/request"),
        Row("  peak memory growth vs the vectors' own bytes",
            f"{last['peak_growth_bytes'] / 2**20:,.0f} MB for {last['vector_bytes'] / 2**20:,.0f} MB",
            ratio_x(memory["median"]), spread_text(memory, ratio_x), ratio_x(memory["max"]),
            "<= 2x (worst)"),
    ]


