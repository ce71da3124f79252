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

Adding a row: write `bench_x(quick) -> dict` (every run kept in the dict) and
`x_rows(results) -> list[Row]`, and add them to SECTIONS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
from IPython.core.displaypub import DisplayPublisher
from lab_latency import bench_lab, lab_rows

HERE = Path(__file__).resolve().parent
STREAM_TOKENS = 4000
# Streams are CPU-bound on loopback: no first-token or per-token delay, so the
# figures are the client's own cost and not the server's pacing.
NO_DELAYS = ("--ttft-ms", "0", "--token-delay-ms", "0")
# A pace for replaying a stream as a slower hosted model would send it (an assumption,
# not a measurement: loopback streams run far faster than any hosted model).
HOSTED_TOKENS_PER_S = 50


@dataclass
class Row:
    """One line of the table; empty cells stay empty."""

    benchmark: str
    measured: str = ""
    median: str = ""
    spread: str = ""
    worst: str = ""
    target: str = ""


HEADER = Row("benchmark", "measured", "median", "spread (min-max; IQR)", "worst", "target")


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def summary(values: Sequence[float]) -> dict:
    """Median, min, max and quartiles of some runs."""
    values = list(values)
    out = {"median": statistics.median(values), "min": min(values), "max": max(values),
           "runs": len(values)}
    if len(values) >= 4:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        out.update(q1=q1, q3=q3)
    return out


def spread_text(s: dict, fmt: Callable[[float], str]) -> str:
    text = f"{fmt(s['min'])}-{fmt(s['max'])}"
    if "q1" in s:
        text += f"; {fmt(s['q1'])}-{fmt(s['q3'])}"
    return f"{text} ({s['runs']} runs)"


def median_pair(ratios: Sequence[float]) -> int:
    """Index of the run whose ratio is the median (the lower middle one for an even count)."""
    order = sorted(range(len(ratios)), key=ratios.__getitem__)
    return order[(len(ratios) - 1) // 2]


def ratio_x(value: float) -> str:
    return f"{value:.3f}x"


# -- 1. the offline server is never the bottleneck ------------------------------------


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


# -- 2. loading the extension is cheap ---------------------------------------------------

LOAD_EXT = """
import time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
start = time.perf_counter()
shell.run_line_magic("load_ext", "mistral_magic")
print(time.perf_counter() - start)
"""
IMPORT_SDK = """
import time
start = time.perf_counter()
import mistralai.client
print(time.perf_counter() - start)
"""


class ServerProcess:
    """The offline server in its own process, so client and server do not share a GIL."""

    def __init__(self, *flags: str):
        import secrets
        import tempfile

        self.api_key = secrets.token_urlsafe(16)
        # The server binds a free port itself (--port 0) and prints its URL first, so no
        # other process on this shared machine can take the port in between.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        if not self._start(flags):
            self._stderr.seek(0)
            raise RuntimeError(f"the offline server did not start: {self._stderr.read()[-2000:]}")

    def _start(self, flags) -> bool:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mistral_magic.offline", "--port", "0",
             "--api-key", self.api_key, *flags],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )
        first = self.proc.stdout.readline()  # "Offline Mistral API on URL", once it listens
        if not first.startswith("Offline Mistral API on "):
            self.proc.wait(10)
            return False
        self.url = first.split(" on ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        # The first chat request waits for the tokenizer; pay that outside the timings.
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(f"{self.url}/v1/chat/completions", timeout=120,
                           headers={"Authorization": f"Bearer {self.api_key}"},
                           json={"model": "mistral-small-latest", "max_tokens": 1,
                                 "messages": [{"role": "user", "content": "warm up"}]})
                return True
            except httpx.ConnectError:
                if self.proc.poll() is not None:
                    return False
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()
        self._stderr.close()


def _use_server(shell, server) -> None:
    # A self-hosted server_url takes its own key: the La Plateforme key never goes there.
    shell.run_line_magic("config", f"MistralMagics.server_url = {server.url!r}")
    shell.run_line_magic("config", f"MistralMagics.server_key = {server.api_key!r}")


def _in_fresh_python(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_load(quick: bool) -> dict:
    repeats = 3 if quick else 7
    runs = []
    for i in range(repeats):  # paired, the order alternating, so machine drift hits both alike
        if i % 2 == 0:
            load, sdk = _in_fresh_python(LOAD_EXT), _in_fresh_python(IMPORT_SDK)
        else:
            sdk, load = _in_fresh_python(IMPORT_SDK), _in_fresh_python(LOAD_EXT)
        runs.append({"load_ext_s": load, "import_sdk_s": sdk, "ratio": load / sdk})
    ratios = [r["ratio"] for r in runs]
    return {"runs": runs, "median_pair": median_pair(ratios), "ratio": summary(ratios)}


def load_rows(ld: dict) -> list[Row]:
    pair = ld["runs"][ld["median_pair"]]
    return [Row("%load_ext vs import mistralai.client",
                f"{pair['load_ext_s'] * 1000:.0f} ms vs {pair['import_sdk_s'] * 1000:.0f} ms",
                f"{pair['ratio']:.2f}x", spread_text(ld["ratio"], lambda v: f"{v:.2f}x"),
                f"{ld['ratio']['max']:.2f}x", "< 0.33x")]


# -- 3. streaming through %%mistral costs what the SDK costs -------------------------------


class Counting(DisplayPublisher):
    """A display publisher that counts what a front end would receive."""

    def __init__(self):
        super().__init__()
        self.bytes = 0
        self.messages = 0

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        self.messages += 1
        # As jupyter_client packs messages: JSON, UTF-8, no ASCII escaping.
        self.bytes += len(json.dumps({"data": data, "metadata": metadata or {},
                                      "transient": transient or {}},
                                     ensure_ascii=False).encode())


class _FakeClock:
    """A clock the replay moves forward by the gaps recorded between real chunks."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Replay:
    """A backend whose stream replays recorded chunks, moving the fake clock by their gaps.

    Only for measuring %%mistral's own work: the chunks are the SDK's own parsed
    events, so everything after the SDK (display, accounting, render) runs as in a cell.
    """

    kind, url = "offline", None

    def __init__(self, recorded: list[tuple[float, object]], clock: _FakeClock):
        self.recorded = recorded
        self.clock = clock
        self.client = SimpleNamespace(chat=SimpleNamespace(stream=self._stream))

    def _stream(self, **request):
        replay = self

        class Events:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def __iter__(self):
                for gap, chunk in replay.recorded:
                    replay.clock.now += gap
                    yield SimpleNamespace(data=chunk)

        return Events()


def _own_work(shell, settings, recorded, repeats: int) -> dict:
    """%%mistral's work for one answer, at the recorded pace, without the SDK's parsing.

    The answer runs through the session's own call path (prompt interpolation, request,
    token estimate and budget check, throttled display updates, accounting, ledger
    row, final render with footer); only the network and the SDK are replaced by the
    recorded chunks, with a fake clock so the throttle lets through the updates a
    real stream at that pace would get.
    """
    from mistral_magic.core import Session
    from mistral_magic.display import StreamView
    from mistral_magic.prompt import interpolate

    clock = _FakeClock()
    replay = _Replay(recorded, clock)

    class ReplaySession(Session):
        @property
        def backend(self):
            return replay

    session = ReplaySession(shell, settings)
    runs = []
    try:
        for _ in range(repeats + 1):  # the first run only warms up, and is dropped
            clock.now = 0.0
            publisher = shell.display_pub
            publisher.bytes = publisher.messages = 0
            start = time.perf_counter()
            view = StreamView(shell, "markdown", clock=clock)
            prompt = interpolate("Write a long essay.", shell.user_ns)
            request = session.build_request(prompt, chat="bench", history=False,
                                            max_tokens=STREAM_TOKENS)
            answer = session.ask(request, chat=None, view=view, stream=True)
            runs.append({"s": time.perf_counter() - start, "display_updates": view.updates,
                         "display_bytes": publisher.bytes,
                         "completion_tokens": answer.completion_tokens,
                         "ledger_rows": len(session.ledger)})
    finally:
        session.close()
    runs = runs[1:]
    return {"runs": runs, "s": summary([r["s"] for r in runs]),
            "replayed_stream_s": sum(gap for gap, _ in recorded)}


def bench_stream(quick: bool) -> dict:
    from IPython.core.interactiveshell import InteractiveShell
    from mistralai.client import Mistral

    import mistral_magic

    server = ServerProcess("--answer-tokens", str(STREAM_TOKENS), *NO_DELAYS)
    shell = InteractiveShell.instance()
    shell.display_pub = Counting()
    shell.run_line_magic("load_ext", "mistral_magic")
    _use_server(shell, server)
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
        wall, cpu = _timed(magic)
        return {"magic_s": wall, "magic_cpu_s": cpu, "display_bytes": shell.display_pub.bytes,
                "display_messages": shell.display_pub.messages}

    raw_sdk()  # warm both paths once
    magic()
    pairs = []
    for i in range(5 if quick else 15):
        # The order alternates: whichever goes second finds caches and the CPU warmer.
        sdk_first = i % 2 == 0
        if sdk_first:
            sdk_wall, sdk_cpu = _timed(raw_sdk)
            run = magic_run()
        else:
            run = magic_run()
            sdk_wall, sdk_cpu = _timed(raw_sdk)
        run.update(sdk_first=sdk_first, sdk_s=sdk_wall, sdk_cpu_s=sdk_cpu)
        pairs.append(run)
    answer = mistral_magic.session().last
    answer_bytes = len(answer.text.encode())
    for run in pairs:
        run["time_ratio"] = run["magic_s"] / run["sdk_s"]
        run["cpu_ratio"] = run["magic_cpu_s"] / run["sdk_cpu_s"]
        run["bytes_ratio"] = run["display_bytes"] / answer_bytes

    # The chunks of one real stream, each with the time since the one before.
    recorded, last = [], time.perf_counter()
    with sdk.chat.stream(**request) as events:
        for event in events:
            now = time.perf_counter()
            recorded.append((now - last, event.data))
            last = now
    settings = mistral_magic.session().settings
    own = _own_work(shell, settings, recorded, 5 if quick else 9)
    # The same chunks at the pace of a slower hosted model: the throttle lets more
    # updates through, each carrying the whole text so far.
    stretch = STREAM_TOKENS / HOSTED_TOKENS_PER_S / own["replayed_stream_s"]
    hosted = _own_work(shell, settings, [(gap * stretch, c) for gap, c in recorded], 1)

    # What updating the display on every chunk would have sent: the whole text each time.
    from mistral_magic.tokens import pieces

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
        "hosted_pace": {"tokens_per_s": HOSTED_TOKENS_PER_S, **hosted["runs"][0],
                        "bytes_ratio": hosted["runs"][0]["display_bytes"] / answer_bytes},
    }


def stream_rows(st: dict) -> list[Row]:
    pairs = st["pairs"]
    wall = pairs[st["time_median_pair"]]
    cpu = pairs[st["cpu_median_pair"]]
    by_bytes = pairs[st["bytes_median_run"]]
    hosted = st["hosted_pace"]
    worst_bytes = max(pairs, key=lambda r: r["bytes_ratio"])
    own, share = st["own_work"], st["own_work_share"]
    own_median = own["runs"][median_pair([r["s"] for r in own["runs"]])]
    updates = sorted({r["display_updates"] for r in own["runs"]})
    return [
        Row(f"%%mistral stream of {st['completion_tokens']} tokens vs SDK, wall",
            f"{wall['magic_s']:.2f} s vs {wall['sdk_s']:.2f} s (median pair)",
            ratio_x(wall["time_ratio"]), spread_text(st["time_ratio"], ratio_x),
            ratio_x(st["time_ratio"]["max"]), "<= 1.05x"),
        Row("  same, client CPU time",
            f"{cpu['magic_cpu_s']:.2f} s vs {cpu['sdk_cpu_s']:.2f} s (median pair)",
            ratio_x(cpu["cpu_ratio"]), spread_text(st["cpu_ratio"], ratio_x),
            ratio_x(st["cpu_ratio"]["max"]), "<= 1.05x"),
        Row("  %%mistral's own work per answer, replayed",
            f"{own_median['s'] * 1000:.1f} ms, {'/'.join(map(str, updates))} updates "
            f"in a {own['replayed_stream_s']:.2f} s stream",
            f"{share['median']:.2%}", spread_text(share, lambda v: f"{v:.2%}"),
            f"{share['max']:.2%}", "<= 5% of the stream"),
        Row("display bytes vs answer bytes",
            f"{by_bytes['display_bytes']:,} B in {by_bytes['display_messages']} msgs vs "
            f"{st['answer_bytes']:,} B",
            f"{by_bytes['bytes_ratio']:.2f}x", spread_text(st["bytes_ratio"], lambda v: f"{v:.2f}x"),
            f"{worst_bytes['bytes_ratio']:.2f}x ({worst_bytes['display_messages']} msgs)",
            "<= 3x"),
        Row(f"  same, replayed at {hosted['tokens_per_s']} tok/s (a slower hosted model)",
            f"{hosted['display_bytes']:,} B in {hosted['display_updates']} updates",
            f"{hosted['bytes_ratio']:.2f}x", "1 run (deterministic replay)", "", "<= 3x"),
        Row("  (naive update per chunk)", "", f"{st['naive_bytes_ratio']:.0f}x"),
    ]


# -- 4. extraction runs at the rate limit ----------------------------------------------------


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
    _use_server(shell, server)
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


# -- a whole answer takes the time of its stream ----------------------------------------------


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
        whole_runs.append(_timed(whole)[0])
        stream_runs.append(_timed(streamed)[0])
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


# -- embedding packs short texts 512 to a request, with bounded memory -------------------------

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
df.head(2).mistral.embed("text", progress=False)  # the tokenizer and the client, warmed
mistral_magic.session().cache.clear()
session = mistral_magic.session()
calls = len(session.ledger)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

before = rss()
start = time.perf_counter()
out = df.mistral.embed("text", concurrency=concurrency, progress=False)
embed_s = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
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
    """Targets: the SDK alone pays the same transfer and JSON parsing, so the engine's own
    work per row (a token count, a cache key, base64) keeps it at 0.75x or better; short
    texts fill requests to the API's 512 inputs (the last one less); memory grows by the
    vectors, their cached copy as base64 (1.33x) and the responses in flight: 3x at most."""
    rows, concurrency = (10_000 if quick else 100_000), 8  # the engine's default
    runs = []
    with ServerProcess(*NO_DELAYS) as server:
        for _ in range(1 if quick else 2):
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
        Row(f"embed {rows:,} short texts (concurrency {em['concurrency']})"
            + (f" ({last['failed']} rows failed)" if last["failed"] else ""),
            f"{rate['median']:,.0f} rows/s vs SDK alone {rows / last['sdk_s']:,.0f} rows/s",
            ratio_x(ratio["median"]), spread_text(ratio, ratio_x), ratio_x(ratio["min"]),
            ">= 0.75x"),
        Row("  requests sent for those rows", f"{last['requests']:,} requests",
            f"{per_request:,.0f} rows/request", "", "", ">= 500 rows/request"),
        Row("  peak memory growth vs the vectors' own bytes",
            f"{last['peak_growth_bytes'] / 2**20:,.0f} MB for {last['vector_bytes'] / 2**20:,.0f} MB",
            ratio_x(memory["median"]), spread_text(memory, ratio_x), ratio_x(memory["max"]),
            "<= 3x"),
    ]


# -- the first cell is as quick as the SDK's first call ----------------------------------------

COLD_PROMPT = "Say hello in one short sentence."
# The kernel (an InteractiveShell) exists before the first cell; the clock starts at %load_ext.
COLD_CELL = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
url, key, budget, prompt = sys.argv[1:5]
start = time.perf_counter()
shell.run_line_magic("load_ext", "mistral_magic")
if url:
    shell.run_line_magic("config", f"MistralMagics.server_url = {url!r}")
    shell.run_line_magic("config", f"MistralMagics.server_key = {key!r}")
if budget:
    shell.run_line_magic("config", f"MistralMagics.budget_usd = {float(budget)!r}")
shell.run_cell_magic("mistral", "--max-tokens 20", prompt)
elapsed = time.perf_counter() - start
import mistral_magic
last = mistral_magic.session().last  # a cached answer would not measure a first call
print(json.dumps({"s": elapsed, "status": "cached" if last.cached else last.status}))
"""
# The same fresh kernel, where a user would call the SDK instead: IPython is already loaded.
COLD_SDK = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
start = time.perf_counter()
from mistralai.client import Mistral
client = Mistral(api_key=sys.argv[2], server_url=sys.argv[1])
with client.chat.stream(model="mistral-small-latest", max_tokens=20,
                        messages=[{"role": "user", "content": sys.argv[3]}]) as events:
    text = "".join(event.data.choices[0].delta.content or "" for event in events)
print(json.dumps({"s": time.perf_counter() - start, "status": "ok" if text else "empty"}))
"""


def _cold(code: str, *args: str, cwd: str, cache: str) -> float:
    """One run in a fresh process with no key (and no .env: it runs in an empty folder).

    Each run has a folder of its own inside `cwd`, so no run finds the response cache an
    earlier run left (.mistral_magic/): every first cell really sends, as a new user's does.
    """
    import tempfile

    env = {k: v for k, v in os.environ.items() if k not in ("MISTRAL_API_KEY", "MISTRAL_SERVER_KEY")}
    env["XDG_CACHE_HOME"] = cache  # the tokenizer's vocabulary cache (platformdirs)
    with tempfile.TemporaryDirectory(dir=cwd) as own:
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                             text=True, check=True, cwd=own, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["status"] != "ok":
        raise RuntimeError(f"a cold-start run ended {result['status']}: {out.stderr[-500:]}")
    return result["s"]


def _paired(repeats: int, magic, sdk) -> dict:
    """Magic and SDK runs side by side, the order alternating inside each pair."""
    runs = []
    for i in range(repeats):
        if i % 2 == 0:
            m, k = magic(), sdk()
        else:
            k, m = sdk(), magic()
        runs.append({"magic_s": m, "sdk_s": k, "ratio": m / k})
    ratios = [r["ratio"] for r in runs]
    return {"runs": runs, "median_pair": median_pair(ratios), "ratio": summary(ratios),
            "magic_s": summary([r["magic_s"] for r in runs])}


def bench_coldstart(quick: bool) -> dict:
    """A fresh kernel's %load_ext + first cell, against the SDK's cold import + first call."""
    import tempfile

    repeats = 3 if quick else 7
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryDirectory() as cache, \
            ServerProcess(*NO_DELAYS) as server:
        url, key = server.url, server.api_key
        # The vocabulary cache a returning user has (a new user's is measured too).
        subprocess.run([sys.executable, "-c", "from mistral_magic import tokens; tokens.vocabulary()"],
                       check=True, env={**os.environ, "XDG_CACHE_HOME": cache})

        def sdk() -> float:
            return _cold(COLD_SDK, url, key, COLD_PROMPT, cwd=cwd, cache=cache)

        def hosted(budget: str = "") -> Callable[[], float]:
            return lambda: _cold(COLD_CELL, url, key, budget, COLD_PROMPT, cwd=cwd, cache=cache)

        def offline(cache_dir: str | None = None) -> float:
            if cache_dir is not None:
                return _cold(COLD_CELL, "", "", "", COLD_PROMPT, cwd=cwd, cache=cache_dir)
            with tempfile.TemporaryDirectory() as empty:  # a new user: nothing cached yet
                return _cold(COLD_CELL, "", "", "", COLD_PROMPT, cwd=cwd, cache=empty)

        return {
            "prompt": COLD_PROMPT, "max_tokens": 20,
            "server": _paired(repeats, hosted(), sdk),
            "budget": _paired(repeats, hosted("5.0"), sdk),
            "offline": _paired(repeats, lambda: offline(cache), sdk),
            "offline_new_user": _paired(repeats, offline, sdk),
        }


def coldstart_rows(c: dict) -> list[Row]:
    def secs(v: float) -> str:
        return f"{v:.2f} s"

    def ratio_row(name: str, r: dict, target: str) -> Row:
        pair = r["runs"][r["median_pair"]]
        return Row(name, f"{pair['magic_s']:.2f} s vs {pair['sdk_s']:.2f} s (median pair)",
                   f"{pair['ratio']:.2f}x", spread_text(r["ratio"], lambda v: f"{v:.2f}x"),
                   f"{r['ratio']['max']:.2f}x", target)

    def seconds_row(name: str, r: dict, target: str) -> Row:
        s = r["magic_s"]
        sdk = statistics.median(run["sdk_s"] for run in r["runs"])
        return Row(name, f"SDK's cold call beside it: {sdk:.2f} s", secs(s["median"]),
                   spread_text(s, secs), secs(s["max"]), target)

    return [
        ratio_row("cold %load_ext + first cell vs SDK's cold import + first call", c["server"],
                  "<= 1.3x"),
        ratio_row("  same, with a budget (counts the prompt before sending)", c["budget"], ""),
        seconds_row("no key: first cell, offline server started by it", c["offline"], "<= 1.5 s"),
        seconds_row("  same, a new user (no tokenizer cache yet)", c["offline_new_user"], ""),
    ]


# -- the Batch API at scale: 100,000 rows in bounded memory ---------------------------------------

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
    import tempfile

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


# -- the table ---------------------------------------------------------------------------------

# (key in the JSON, benchmark, its rows in the table): a new row is one more entry.
SECTIONS: list[tuple[str, Callable[[bool], dict], Callable[[dict], list[Row]]]] = [
    ("server", bench_server, server_rows),
    ("load", bench_load, load_rows),
    ("stream", bench_stream, stream_rows),
    ("extract", bench_extract, extract_rows),
    ("paced", bench_paced, paced_rows),
    ("embed", bench_embed, embed_rows),
    ("coldstart", bench_coldstart, coldstart_rows),
    ("batch", bench_batch, batch_rows),
    # Codestral completion in a real JupyterLab (benchmarks/lab_latency.py).
    ("lab", bench_lab, lambda results: [Row(*row) for row in lab_rows(results)]),
]


def table(rows: Sequence[Row]) -> str:
    cells = [astuple(HEADER), *(astuple(r) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    cells.insert(1, tuple("-" * w for w in widths))
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


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
