"""OfflineServer: the app served by uvicorn in a daemon thread on a socket bound up front."""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time

from .faults import FaultPlan, FaultState, coerce
from .guard import REQUEST_TIMEOUT_S, guarded_h11

START_TIMEOUT_S = 15
KEEP_ALIVE_S = 5  # an idle connection is closed this long after its last response


class _QuietDrops(logging.Filter):
    """Hide uvicorn's complaint about the streams we cut on purpose (drop_stream_after)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


_QUIET_DROPS = _QuietDrops()


class OfflineServer:
    """A local server speaking Mistral's API, for use with the official SDK.

    `OfflineServer(host, port=0, api_key=None, faults=None, seed=0, transcripts=None)`:
    port 0 picks a free port (bound at once, so `.url` is known before `start()`); a
    missing key becomes a random one; `transcripts` is the folder where sidecar
    transcripts are found (`audio.Sidecars`; None: the working folder at each request). `seed` varies the offline answers and is the default seed
    of fault plans that do not set their own. A request must arrive within
    `request_timeout_s` (plus its size at 256 KiB/s) and an idle connection is closed
    `KEEP_ALIVE_S` after its last response (`guard`), so slow clients cannot hold it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 faults: FaultPlan | dict | None = None, seed: int = 0,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, transcripts=None):
        self.host = host
        self.transcripts = transcripts
        self.api_key = api_key or secrets.token_urlsafe(24)
        self.seed = seed
        self.request_timeout_s = request_timeout_s
        self._faults = FaultState(self._seeded(faults))
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._state = None
        self._bind()

    def _seeded(self, plan: FaultPlan | dict | None) -> FaultPlan:
        if isinstance(plan, dict) and "seed" not in plan:
            plan = {**plan, "seed": self.seed}
        plan = coerce(plan)
        if "seed" not in plan.model_fields_set and self.seed:
            plan = plan.model_copy(update={"seed": self.seed})
        return plan

    def _bind(self) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this; without it Nagle holds each response body
        # until the client's delayed ACK (~40 ms per keep-alive request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._requested_port))
        self._port = sock.getsockname()[1]
        # Keep the port from now on: restarting binds the same one again.
        self._requested_port = self._port
        self._sock = sock

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def faults(self) -> FaultPlan:
        return self._faults.plan

    def set_faults(self, plan: FaultPlan | dict | None) -> None:
        """Replace the server-wide fault plan (None clears it); restarts nth counters."""
        self._faults.replace(self._seeded(plan))

    def request_count(self, path: str | None = None) -> int:
        """Requests received so far, all or for one path such as "/v1/chat/completions"."""
        return self._state.count(path) if self._state else 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> OfflineServer:
        """Serve in a daemon thread; returns once connections are accepted."""
        if self.running:
            return self
        from ..money import tokens

        # The vocabulary loads while uvicorn starts; only requests that count wait for it.
        tokens.warm()
        import uvicorn

        from .app import ServerState, build

        logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)
        if self._sock is None:
            self._bind()
        if self._state is None:
            self._state = ServerState(self.api_key, self._faults, self.seed, self.transcripts)
        self._sock.listen(512)
        config = uvicorn.Config(
            build(self._state), log_config=None, log_level="warning", access_log=False,
            lifespan="off", ws="none", http=guarded_h11(self.request_timeout_s),
            timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        sock = self._sock
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name=f"offline-server-{self._port}", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the offline server could not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=5)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the command-line mode)."""
        self.start()
        try:
            while self.running:
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> OfflineServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"OfflineServer(url={self.url!r}, running={self.running})"
