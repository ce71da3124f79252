"""Extraction runs at the rate limit: rows/s against the limiter's ceiling."""

from __future__ import annotations

import statistics
import time

from .harness import NO_DELAYS, Row, ServerProcess, ratio_x, spread_text, summary, use_server


def bench_extract(quick: bool) -> dict:
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell
    from mistralai.client import Mistral

    import mistral_magic

    rows, latency_s, limit, concurrency = 200, 0.05, 40, 8
    server = ServerProcess("--latency-ms", str(latency_s * 1000), "--rate-limit-rps", str(limit),
                           *NO_DELAYS)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mistral_magic")
    use_server(shell, server)
    df = pd.DataFrame({"text": [f"Item {i}: a lamp for {10 + i} euros, {i % 5 + 1} stars."
                                for i in range(rows)]})
    schema = "item, price float, stars int"
    # Warm the tokenizer and the schema validator outside the timed run.
    df.head(2).mistral.extract("{text}", schema=schema, progress=False)
    runs, failed = [], []
    for _ in range(2 if quick else 3):
        mistral_magic.session().cache.clear()
        time.sleep(1.5)  # let the server's rate window empty
        start = time.perf_counter()
        out = df.mistral.extract("{text}", schema=schema, concurrency=concurrency,
                                 requests_per_second=limit, progress=False)
        runs.append(time.perf_counter() - start)
        failed.append(int(out["_error"].notna().sum()))
    bound = max(rows / limit, rows * latency_s / concurrency)

    sdk = Mistral(api_key=server.api_key, server_url=server.url)
    loop_rows = 40 if quick else rows
    start = time.perf_counter()
    for text in df["text"][:loop_rows]:
        sdk.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": text}],
                          response_format={"type": "json_object"})
    loop_s = (time.perf_counter() - start) * rows / loop_rows
    server.__exit__()
    shell.run_line_magic("unload_ext", "mistral_magic")
    return {
        "rows": rows, "latency_ms": latency_s * 1000, "limit_rps": limit,
        "concurrency": concurrency, "failed_rows_runs": failed,
        "extract_runs_s": runs, "extract_s": summary(runs), "lower_bound_s": bound,
        "bound_ratio": summary([r / bound for r in runs]),
        "for_loop_s": loop_s, "for_loop_measured_rows": loop_rows,
        "speedup_vs_loop": loop_s / statistics.median(runs),
    }


def extract_rows(ex: dict) -> list[Row]:
    ratio = ex["bound_ratio"]
    failed = max(ex["failed_rows_runs"])
    return [
        Row(f"extract {ex['rows']} rows, {ex['latency_ms']:.0f} ms, {ex['limit_rps']} req/s"
            + (f" ({failed} rows failed)" if failed else ""),
            f"{ex['extract_s']['median']:.2f} s vs bound {ex['lower_bound_s']:.2f} s",
            ratio_x(ratio["median"]), spread_text(ratio, ratio_x), ratio_x(ratio["max"]),
            "<= 1.15x"),
        Row("  vs a for-loop of chat.complete",
            f"{ex['for_loop_s']:.2f} s ({ex['for_loop_measured_rows']} rows timed)",
            f"{ex['speedup_vs_loop']:.1f}x faster"),
    ]


