"""Server-sent event streams, with the stream faults: delays and abrupt cuts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

from .faults import FaultPlan

# Without per-token delays a long stream would hold the event loop; yield every so often.
_YIELD_EVERY = 64


def frame(data: dict) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


class EventStream:
    """An ASGI response sending SSE frames: headers at once, then frames paced by the plan.

    `frames` yields (bytes, counts_as_token). After `drop_stream_after` tokens the
    response ends without its final empty chunk, so uvicorn closes the connection
    mid-body and the client sees an incomplete chunked read, as with a dropped link.
    """

    def __init__(self, frames: Iterable[tuple[bytes, bool]], plan: FaultPlan):
        self.frames = frames
        self.plan = plan

    async def __call__(self, scope, receive, send) -> None:
        disconnected = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ]})
            if await self._run(send, disconnected):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()

    async def _run(self, send, disconnected: asyncio.Event) -> bool:
        """Send the frames; False when the stream was dropped on purpose."""
        plan = self.plan
        delay = plan.token_delay_ms / 1000
        if plan.ttft_ms:
            await asyncio.sleep(plan.ttft_ms / 1000)
        sent_tokens = 0
        for i, (data, is_token) in enumerate(self.frames):
            if disconnected.is_set():
                return True
            if is_token:
                if plan.drop_stream_after is not None and sent_tokens >= plan.drop_stream_after:
                    return False
                if delay and sent_tokens:
                    await asyncio.sleep(delay)
                sent_tokens += 1
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if not delay and i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return True
