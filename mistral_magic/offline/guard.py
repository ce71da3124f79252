"""Slow clients: a request must arrive within a bounded time, as a real server demands.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but only once
a response has gone out, and it sets no bound on how long a request's headers or body
may take to arrive: connections that trickle a header byte now and then (slowloris)
stay open forever, each holding a socket and a buffer. `guarded_h11(grace_s)` is
uvicorn's h11 protocol with that bound. From the moment a request begins (the
connection opens, or the first byte after a response), it must have arrived whole
within `grace_s` seconds plus the time its bytes take at `MIN_RATE`; otherwise the
connection is closed, after a 408 in the API's error shape when the request's headers
were still coming (a request whose body was cut reaches the app as a client that left).
Time in which the server itself stopped reading (flow control, while the app has not
taken the body yet) does not count against the client.
"""

from __future__ import annotations

import json
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .wire import error_body

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
MIN_RATE = 256 * 1024  # bytes a second a request must average once its grace time is over


def guarded_h11(grace_s: float = REQUEST_TIMEOUT_S) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing connections whose request does not arrive in time."""
    return type("GuardedH11Protocol", (_Guarded,), {"grace_s": grace_s})


def _timeout_response(grace_s: float) -> bytes:
    body = json.dumps(error_body(
        f"The request did not arrive within {grace_s:g} s (plus its size at "
        f"{MIN_RATE // 1024} KiB/s); the offline server closed the connection",
        "request_timeout")).encode()
    head = (f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


class _Guarded(H11Protocol):
    grace_s = REQUEST_TIMEOUT_S

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._since: float | None = None  # when the request being read began (None: none is)
        self._received = 0
        self._checked = 0.0
        self._timer = None
        super().connection_made(transport)
        self._begin()  # a connection that sends nothing is a request that never arrives

    def data_received(self, data: bytes) -> None:
        if self._since is None:
            self._begin()
        self._received += len(data)
        super().data_received(data)
        if self._arrived():
            self._end()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._since is None and not self._arrived():  # a pipelined request, partly here
            self._begin()

    def connection_lost(self, exc) -> None:
        self._end()
        super().connection_lost(exc)

    def _arrived(self) -> bool:
        """Whether no request is partly read: between requests, or the whole one is here."""
        state = self.conn.their_state
        if state is h11.IDLE:
            return not self.conn.trailing_data[0]
        return state is not h11.SEND_BODY

    def _begin(self) -> None:
        self._end()
        self._since = self._checked = self.loop.time()
        self._received = 0
        self._timer = self.loop.call_later(self._interval(), self._check)

    def _end(self) -> None:
        self._since = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _interval(self) -> float:
        return min(0.5, self.grace_s / 4)

    def _check(self) -> None:
        self._timer = None
        if self._since is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the server stopped reading: the client is waiting on us
            self._since += now - self._checked
        self._checked = now
        if now - self._since > self.grace_s + self._received / MIN_RATE:
            self._too_slow()
            return
        self._timer = self.loop.call_later(self._interval(), self._check)

    def _too_slow(self) -> None:
        log.debug("closed a connection whose request did not arrive within %s s", self.grace_s)
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            self.transport.write(_timeout_response(self.grace_s))
        self._since = None
        self.transport.close()
