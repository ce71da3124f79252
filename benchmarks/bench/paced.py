"""A whole answer takes the time of its stream, at a hosted model's pace."""

from __future__ import annotations

import statistics

from .harness import Row, ServerProcess, ratio_x, spread_text, summary, timed


def bench_paced(quick: bool) -> dict:
    """The same 400-token answer, not streamed and streamed, from a server paced like a hosted model."""
    from mistralai.client import Mistral

    tokens, ttft_ms, delay_ms = 400, 300, 10
    server = ServerProcess("--answer-tokens", str(tokens), "--ttft-ms", str(ttft_ms),
                           "--token-delay-ms", str(delay_ms))
    sdk = Mistral(api_key=server.api_key, server_url=server.url)
    request = {"model": "mistral-small-latest", "max_tokens": tokens, "random_seed": 1,
               "messages": [{"role": "user", "content": "Write a long essay."}]}

    def whole():
        sdk.chat.complete(**request)

    def streamed():
        with sdk.chat.stream(**request) as events:
            for _ in events:
                pass

    whole_runs, stream_runs = [], []
    for _ in range(3 if quick else 5):  # interleaved, so machine load hits both alike
        whole_runs.append(timed(whole)[0])
        stream_runs.append(timed(streamed)[0])
    server.__exit__()
    return {"tokens": tokens, "ttft_ms": ttft_ms, "token_delay_ms": delay_ms,
            "expected_s": (ttft_ms + delay_ms * (tokens - 1)) / 1000,
            "whole_runs_s": whole_runs, "stream_runs_s": stream_runs,
            "ratios": [w / s for w, s in zip(whole_runs, stream_runs, strict=True)]}


def paced_rows(p: dict) -> list[Row]:
    ratio = summary(p["ratios"])
    worst = max(p["ratios"], key=lambda r: abs(r - 1))  # the target bounds both sides
    return [Row(f"{p['tokens']}-token answer, not streamed vs streamed (paced)",
                f"{statistics.median(p['whole_runs_s']):.2f} s vs "
                f"{statistics.median(p['stream_runs_s']):.2f} s",
                ratio_x(ratio["median"]), spread_text(ratio, ratio_x), ratio_x(worst),
                "0.90x to 1.10x")]


