"""Slow clients cannot hold the offline server: a request must arrive in bounded time.

Raw sockets play slowloris: some send part of a request line and headers and stop, some
send nothing, some send headers and part of a body, one trickles a header byte every
tenth of a second (which an idle timeout alone would never cut). With a one-second
bound the server must close every one of them; the only time limit here is a generous
socket timeout, so a slow machine cannot fail the test, and a server that keeps them
open forever does.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx

from mistral_magic.offline import OfflineServer

PATIENCE_S = 60  # far past the server's bound: only a connection kept open forever fails


def connect(server: OfflineServer, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection((server.host, server.port))
    sock.settimeout(PATIENCE_S)
    if first:
        sock.sendall(first)
    return sock


def closed_by_server(sock: socket.socket) -> bytes:
    """What the server sent before closing; fails when it keeps the connection open."""
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    except TimeoutError as exc:
        raise AssertionError(f"still open after {PATIENCE_S} s") from exc
    return got


def trickle(sock: socket.socket, result: dict) -> None:
    """One header byte at a time until the server closes the connection."""
    sock.sendall(b"POST /v1/ocr HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    try:
        while time.monotonic() - started < PATIENCE_S:
            sock.sendall(b"a")
            time.sleep(0.1)
    except OSError:
        result["cut"] = True


def test_slow_and_silent_connections_are_closed():
    with OfflineServer(request_timeout_s=1) as server:
        socks: list[socket.socket] = []
        try:
            partial = [connect(server, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuth")
                       for _ in range(200)]
            silent = [connect(server) for _ in range(20)]
            bodies = [connect(server, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                      b"Authorization: Bearer " + server.api_key.encode() +
                              b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
                              b"\r\n{\"model\": ") for _ in range(20)]
            socks += partial + silent + bodies
            trickler, result = connect(server), {}
            socks.append(trickler)
            thread = threading.Thread(target=trickle, args=(trickler, result))
            thread.start()
            for sock in partial + silent:
                assert closed_by_server(sock).startswith(b"HTTP/1.1 408 ")
            for sock in bodies:
                closed_by_server(sock)
            thread.join()
            assert result.get("cut"), "the trickling connection was never closed"
            # Those who send in time are served as before, and a kept-alive connection
            # that has its answer and then idles is closed too.
            with httpx.Client(base_url=server.url,
                              headers={"Authorization": f"Bearer {server.api_key}"}) as http:
                assert http.get("/v1/models").status_code == 200
            idle = connect(server, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n"
                                   b"Authorization: Bearer " + server.api_key.encode() + b"\r\n\r\n")
            socks.append(idle)
            assert closed_by_server(idle).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in socks:
                sock.close()
