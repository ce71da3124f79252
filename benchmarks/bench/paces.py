"""Display bytes at a hosted model's paces: a long answer costs the front end O(answer).

Streams recorded from the offline server are replayed through %%mistral's own call path
(`replay`) at 20, 50 and 2,000 tokens a second, a 4,000-token answer and a 400-token
one: each recorded stream is one run, so the spread is that of real chunk timings, and
the display rows are judged on their worst run.

"final state" is what the outputs hold when the answer has ended (each output's last
message: what a saved notebook keeps): the rendered answer and, beside it, the whole
answer as text/plain, so about twice the answer's bytes before anything is streamed.
What a row shows beyond it is what streaming cost.
"""

from __future__ import annotations

import statistics

from .harness import NO_DELAYS, Row, ServerProcess, spread_text, summary, use_server
from .replay import Counting, at_pace, own_work, record

# (answer tokens, tokens a second): the long answer at every pace, a short one at 50.
CASES = ((4000, 20), (4000, 50), (4000, 2000), (400, 50))
TARGET = 2.2


def bench_paces(quick: bool) -> dict:
    from IPython.core.interactiveshell import InteractiveShell
    from mistralai.client import Mistral

    import mistral_magic

    streams = 3 if quick else 7
    shell = InteractiveShell.instance()
    shell.display_pub = Counting()
    shell.run_line_magic("load_ext", "mistral_magic")
    results: dict = {}
    try:
        for tokens in sorted({tokens for tokens, _ in CASES}):
            with ServerProcess("--answer-tokens", str(tokens), *NO_DELAYS) as server:
                use_server(shell, server)
                sdk = Mistral(api_key=server.api_key, server_url=server.url)
                request = {"model": "mistral-small-latest", "max_tokens": tokens,
                           "messages": [{"role": "user", "content": "Write a long essay."}]}
                recorded = [record(sdk, request) for _ in range(streams)]
            settings = mistral_magic.session().settings
            for case_tokens, pace in CASES:
                if case_tokens != tokens:
                    continue
                runs = []
                for chunks in recorded:
                    run = own_work(shell, settings, at_pace(chunks, tokens, pace), 1, tokens)
                    run = run["runs"][0]
                    run["bytes_ratio"] = run["display_bytes"] / run["answer_bytes"]
                    runs.append(run)
                results[f"{tokens}@{pace}"] = {
                    "tokens": tokens, "tokens_per_s": pace, "stream_s": tokens / pace,
                    "runs": runs, "bytes_ratio": summary([r["bytes_ratio"] for r in runs])}
    finally:
        shell.run_line_magic("unload_ext", "mistral_magic")
    return results


def paces_rows(results: dict) -> list[Row]:
    rows = []
    for case in sorted(results.values(), key=lambda c: (-c["tokens"], c["tokens_per_s"])):
        ratio = case["bytes_ratio"]
        runs = case["runs"]
        median_run = sorted(runs, key=lambda r: r["bytes_ratio"])[(len(runs) - 1) // 2]
        updates = statistics.median(r["display_messages"] for r in runs)
        final = median_run["final_bytes"] / median_run["answer_bytes"]
        rows.append(Row(
            f"  display bytes, {case['tokens']:,}-token answer at {case['tokens_per_s']:,} tok/s",
            f"{median_run['display_bytes']:,} B for {median_run['answer_bytes']:,} B "
            f"(final state {final:.2f}x); {updates:.0f} msgs in {case['stream_s']:.0f} s",
            f"{ratio['median']:.2f}x", spread_text(ratio, lambda v: f"{v:.2f}x"),
            f"{ratio['max']:.2f}x",
            f"<= {TARGET}x (worst)" if case["tokens"] >= 4000 else ""))
    return rows
