"""Answers on the wire, paced as the hosted API paces them: SSE streams, and whole answers.

A stream sends its first token after `ttft_ms` and each further token step
`token_delay_ms` later; a whole (non-streamed) answer is sent when its streamed twin
would have sent its last token, so clients that do not stream see the same time.
Steps are scheduled against the clock, not slept one after another, so a long
stream does not drift late. A client that goes away ends the wait quietly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable

from .faults import FaultPlan

log = logging.getLogger(__name__)

# Without per-token delays a long stream would hold the event loop; yield every so often.
_YIELD_EVERY = 64


def frame(data: dict) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def answer_seconds(plan: FaultPlan, steps: int) -> float:
    """How long an answer of `steps` token steps takes to arrive: first token, then one per step."""
    return (plan.ttft_ms + plan.token_delay_ms * max(0, steps - 1)) / 1000


class _Disconnect:
    """Watches `receive` for the client going away, while the response is being prepared."""

    def __init__(self, receive):
        self.gone = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return

    async def sleep_until(self, deadline: float) -> bool:
        """Wait until the loop time `deadline`; False if the client left first."""
        delay = deadline - asyncio.get_running_loop().time()
        if self.gone.is_set():
            return False
        if delay <= 0:
            return True
        try:
            await asyncio.wait_for(self.gone.wait(), delay)
        except asyncio.TimeoutError:
            return True
        return False

    def close(self) -> None:
        self._task.cancel()


class PacedResponse:
    """A whole JSON answer (already encoded), sent after `seconds` unless the client leaves first."""

    def __init__(self, body: bytes, seconds: float, status: int = 200):
        self.body = body
        self.seconds = seconds
        self.status = status

    async def __call__(self, scope, receive, send) -> None:
        if self.seconds > 0:
            watch = _Disconnect(receive)
            try:
                if not await watch.sleep_until(asyncio.get_running_loop().time() + self.seconds):
                    log.debug("client left before its %s answer was sent", scope.get("path"))
                    return
            finally:
                watch.close()
        await send({"type": "http.response.start", "status": self.status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        ]})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class EventStream:
    """An ASGI response sending SSE frames: headers at once, then frames paced by the plan.

    `frames` yields (bytes, starts_a_step): a token step is one token of every choice
    still generating. After `drop_stream_after` steps the response ends without its
    final empty chunk, so uvicorn closes the connection mid-body and the client sees
    an incomplete chunked read, as with a dropped link.
    """

    def __init__(self, frames: Iterable[tuple[bytes, bool]], plan: FaultPlan):
        self.frames = frames
        self.plan = plan

    async def __call__(self, scope, receive, send) -> None:
        watch = _Disconnect(receive)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ]})
            if await self._run(send, watch):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watch.close()

    async def _run(self, send, watch: _Disconnect) -> bool:
        """Send the frames; False when the stream was dropped on purpose."""
        plan = self.plan
        delay = plan.token_delay_ms / 1000
        first = asyncio.get_running_loop().time() + plan.ttft_ms / 1000
        if plan.ttft_ms and not await watch.sleep_until(first):
            return True
        steps = 0
        for i, (data, is_step) in enumerate(self.frames):
            if watch.gone.is_set():
                log.debug("client left a stream after %d token steps", steps)
                return True
            if is_step:
                if plan.drop_stream_after is not None and steps >= plan.drop_stream_after:
                    return False
                if delay and steps and not await watch.sleep_until(first + delay * steps):
                    return True
                steps += 1
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if not delay and i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return True
