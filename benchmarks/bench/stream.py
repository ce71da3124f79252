"""Streaming through %%mistral costs what the SDK costs: wall, CPU and display bytes."""

from __future__ import annotations

import json
import statistics

from .harness import (
    NO_DELAYS,
    STREAM_TOKENS,
    Row,
    ServerProcess,
    median_pair,
    ratio_x,
    spread_text,
    summary,
    timed,
    use_server,
)
from .replay import Counting, own_work, record


def bench_stream(quick: bool) -> dict:
    from IPython.core.interactiveshell import InteractiveShell
    from mistralai.client import Mistral

    import mistral_magic

    server = ServerProcess("--answer-tokens", str(STREAM_TOKENS), *NO_DELAYS)
    shell = InteractiveShell.instance()
    shell.display_pub = Counting()
    shell.run_line_magic("load_ext", "mistral_magic")
    use_server(shell, server)
    shell.run_line_magic("config", f"MistralMagics.max_tokens = {STREAM_TOKENS}")
    sdk = Mistral(api_key=server.api_key, server_url=server.url)
    request = {"model": "mistral-small-latest", "max_tokens": STREAM_TOKENS,
               "messages": [{"role": "user", "content": "Write a long essay."}]}

    def raw_sdk():
        text = []
        with sdk.chat.stream(**request) as events:
            for event in events:
                text.append(event.data.choices[0].delta.content or "")
        return "".join(text)

    def magic():
        shell.run_cell_magic("mistral", "--no-history", "Write a long essay.")

    def magic_run() -> dict:
        shell.display_pub.bytes = shell.display_pub.messages = 0
        wall, cpu = timed(magic)
        return {"magic_s": wall, "magic_cpu_s": cpu, "display_bytes": shell.display_pub.bytes,
                "display_messages": shell.display_pub.messages}

    raw_sdk()  # warm both paths once
    magic()
    pairs = []
    for i in range(9 if quick else 15):
        # The order alternates: whichever goes second finds caches and the CPU warmer.
        sdk_first = i % 2 == 0
        if sdk_first:
            sdk_wall, sdk_cpu = timed(raw_sdk)
            run = magic_run()
        else:
            run = magic_run()
            sdk_wall, sdk_cpu = timed(raw_sdk)
        run.update(sdk_first=sdk_first, sdk_s=sdk_wall, sdk_cpu_s=sdk_cpu)
        pairs.append(run)
    answer = mistral_magic.session().last
    answer_bytes = len(answer.text.encode())
    for run in pairs:
        run["time_ratio"] = run["magic_s"] / run["sdk_s"]
        run["cpu_ratio"] = run["magic_cpu_s"] / run["sdk_cpu_s"]
        run["bytes_ratio"] = run["display_bytes"] / answer_bytes

    settings = mistral_magic.session().settings
    own = own_work(shell, settings, record(sdk, request), 5 if quick else 9)

    # What updating the display on every chunk would have sent: the whole text each time.
    from mistral_magic.money.tokens import pieces

    so_far, naive = "", 0
    for piece in pieces(answer.text):
        so_far += piece
        naive += len(json.dumps({"data": {"text/markdown": so_far}}, ensure_ascii=False).encode())
    server.__exit__()
    shell.run_line_magic("unload_ext", "mistral_magic")
    sdk_median_s = statistics.median(r["sdk_s"] for r in pairs)
    return {
        "completion_tokens": answer.completion_tokens,
        "answer_bytes": answer_bytes,
        "pairs": pairs,
        "time_ratio": summary([r["time_ratio"] for r in pairs]),
        "time_median_pair": median_pair([r["time_ratio"] for r in pairs]),
        "cpu_ratio": summary([r["cpu_ratio"] for r in pairs]),
        "cpu_median_pair": median_pair([r["cpu_ratio"] for r in pairs]),
        "bytes_ratio": summary([r["bytes_ratio"] for r in pairs]),
        "bytes_median_run": median_pair([r["bytes_ratio"] for r in pairs]),
        "own_work": own,
        # Its share of the stream it replays: the same pace gave the same display updates.
        "own_work_share": summary([r["s"] / own["replayed_stream_s"] for r in own["runs"]]),
        "sdk_median_s": sdk_median_s,
        "naive_bytes_ratio": naive / answer_bytes,
    }


def stream_rows(st: dict) -> list[Row]:
    pairs = st["pairs"]
    wall = pairs[st["time_median_pair"]]
    cpu = pairs[st["cpu_median_pair"]]
    by_bytes = pairs[st["bytes_median_run"]]
    worst_bytes = max(pairs, key=lambda r: r["bytes_ratio"])
    own, share = st["own_work"], st["own_work_share"]
    own_median = own["runs"][median_pair([r["s"] for r in own["runs"]])]
    updates = sorted({r["display_updates"] for r in own["runs"]})
    return [
        Row(f"%%mistral stream of {st['completion_tokens']} tokens vs SDK, wall",
            f"{wall['magic_s']:.2f} s vs {wall['sdk_s']:.2f} s (median pair)",
            ratio_x(wall["time_ratio"]), spread_text(st["time_ratio"], ratio_x),
            ratio_x(st["time_ratio"]["max"]), "<= 1.02x (median)"),
        Row("  same, client CPU time",
            f"{cpu['magic_cpu_s']:.2f} s vs {cpu['sdk_cpu_s']:.2f} s (median pair)",
            ratio_x(cpu["cpu_ratio"]), spread_text(st["cpu_ratio"], ratio_x),
            ratio_x(st["cpu_ratio"]["max"]), "<= 1.05x"),
        Row("  %%mistral's own work per answer, replayed",
            f"{own_median['s'] * 1000:.1f} ms, {'/'.join(map(str, updates))} updates "
            f"in a {own['replayed_stream_s']:.2f} s stream",
            f"{share['median']:.2%}", spread_text(share, lambda v: f"{v:.2%}"),
            f"{share['max']:.2%}", "<= 5% of the stream"),
        Row("display bytes vs answer bytes, loopback",
            f"{by_bytes['display_bytes']:,} B in {by_bytes['display_messages']} msgs vs "
            f"{st['answer_bytes']:,} B",
            f"{by_bytes['bytes_ratio']:.2f}x", spread_text(st["bytes_ratio"], lambda v: f"{v:.2f}x"),
            f"{worst_bytes['bytes_ratio']:.2f}x ({worst_bytes['display_messages']} msgs)",
            "<= 2.2x (worst)"),
        Row("  (naive update per chunk)", "", f"{st['naive_bytes_ratio']:.0f}x"),
    ]


