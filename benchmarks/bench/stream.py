"""Streaming through %%mistral costs what the SDK costs: wall, CPU and display bytes."""

from __future__ import annotations

import json
import statistics
import time
from types import SimpleNamespace

from IPython.core.displaypub import DisplayPublisher

from .harness import (
    HOSTED_TOKENS_PER_S,
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
    from mistral_magic.inputs.prompt import interpolate
    from mistral_magic.show.display import StreamView

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
    for i in range(5 if quick else 15):
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


