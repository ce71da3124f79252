"""The offline server is never the bottleneck: requests/s against a bare Starlette app."""

from __future__ import annotations

import asyncio
import time

import httpx

from .harness import STREAM_TOKENS, Row, spread_text, summary


def bench_server(quick: bool) -> dict:
    from mistral_magic.offline import OfflineServer

    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "Hi there"}],
            "max_tokens": 16}
    batches, per_batch = (3, 150) if quick else (5, 300)
    streams = 2 if quick else 3

    with OfflineServer() as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}

        async def many():
            limits = httpx.Limits(max_connections=8)
            async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits,
                                         timeout=60) as client:
                sem = asyncio.Semaphore(8)

                async def one():
                    async with sem:
                        r = await client.post("/v1/chat/completions", json=body)
                        r.raise_for_status()

                await asyncio.gather(*(one() for _ in range(16)))  # tokenizer loads on first use
                rates = []
                for _ in range(batches):
                    start = time.perf_counter()
                    await asyncio.gather(*(one() for _ in range(per_batch)))
                    rates.append(per_batch / (time.perf_counter() - start))
                return rates

        rates = asyncio.run(many())
        server.set_faults({"answer_tokens": STREAM_TOKENS})
        stream_body = dict(body, max_tokens=STREAM_TOKENS, stream=True)
        token_rates = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            for _ in range(streams):
                start = time.perf_counter()
                frames = 0
                with client.stream("POST", "/v1/chat/completions", json=stream_body) as r:
                    for line in r.iter_lines():
                        frames += line.startswith("data: {")
                token_rates.append(frames / (time.perf_counter() - start))
        server.set_faults(None)
    return {"requests_per_batch": per_batch, "requests_per_s_runs": rates,
            "requests_per_s": summary(rates), "streamed_tokens": STREAM_TOKENS,
            "streamed_tokens_per_s_runs": token_rates, "streamed_tokens_per_s": summary(token_rates)}


def server_rows(s: dict) -> list[Row]:
    def rate(value: float) -> str:
        return f"{value:,.0f}"

    req, tok = s["requests_per_s"], s["streamed_tokens_per_s"]
    return [
        Row("offline server, non-streamed", f"{s['requests_per_batch']} requests a run",
            f"{rate(req['median'])} req/s", spread_text(req, rate), f"{rate(req['min'])} req/s",
            "never the bottleneck"),
        Row(f"offline server, streamed {s['streamed_tokens']} tokens", "",
            f"{rate(tok['median'])} tok/s", spread_text(tok, rate), f"{rate(tok['min'])} tok/s",
            "never the bottleneck"),
    ]


