"""Replaying a recorded stream through %%mistral's own call path, at any pace.

A stream recorded once from the offline server (the SDK's own parsed chunks, each with
the time since the one before) is replayed through the session with a fake clock moved
by the recorded gaps, stretched to the pace wanted: everything after the SDK (display,
accounting, render) runs as in a cell, and the display throttle sees the updates a real
stream at that pace would get, without waiting for it.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from IPython.core.displaypub import DisplayPublisher

from .harness import STREAM_TOKENS, summary


def record(sdk, request: dict) -> list[tuple[float, object]]:
    """The chunks of one real stream, each with the seconds since the one before."""
    recorded, last = [], time.perf_counter()
    with sdk.chat.stream(**request) as events:
        for event in events:
            now = time.perf_counter()
            recorded.append((now - last, event.data))
            last = now
    return recorded


def at_pace(recorded: list[tuple[float, object]], tokens: int, tokens_per_s: float) -> list:
    """The same chunks, their gaps stretched so that the stream lasts `tokens / tokens_per_s`."""
    stretch = tokens / tokens_per_s / sum(gap for gap, _ in recorded)
    return [(gap * stretch, chunk) for gap, chunk in recorded]


class Counting(DisplayPublisher):
    """A display publisher that counts what a front end would receive."""

    def __init__(self):
        super().__init__()
        self.bytes = 0
        self.messages = 0
        self.last: dict = {}  # each output's last message: what a saved notebook keeps

    @property
    def final_bytes(self) -> int:
        """The bytes of the outputs as they ended (their last message each)."""
        return sum(self.last.values())

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        self.messages += 1
        # As jupyter_client packs messages: JSON, UTF-8, no ASCII escaping.
        size = len(json.dumps({"data": data, "metadata": metadata or {},
                               "transient": transient or {}}, ensure_ascii=False).encode())
        self.bytes += size
        self.last[(transient or {}).get("display_id") or f"output-{self.messages}"] = size


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


def own_work(shell, settings, recorded, repeats: int, max_tokens: int = STREAM_TOKENS) -> dict:
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
            publisher.last = {}
            start = time.perf_counter()
            view = StreamView(shell, "markdown", clock=clock)
            prompt = interpolate("Write a long essay.", shell.user_ns)
            request = session.build_request(prompt, chat="bench", history=False,
                                            max_tokens=max_tokens)
            answer = session.ask(request, chat=None, view=view, stream=True)
            runs.append({"s": time.perf_counter() - start, "display_updates": view.updates,
                         "display_bytes": publisher.bytes,
                         "final_bytes": publisher.final_bytes,
                         "display_messages": publisher.messages,
                         "answer_bytes": len(answer.text.encode()),
                         "completion_tokens": answer.completion_tokens,
                         "ledger_rows": len(session.ledger)})
    finally:
        session.close()
    runs = runs[1:]
    return {"runs": runs, "s": summary([r["s"] for r in runs]),
            "replayed_stream_s": sum(gap for gap, _ in recorded)}


