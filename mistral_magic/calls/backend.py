"""Where requests go: La Plateforme, a self-hosted server, or the built-in offline server.

A backend is a base URL and a key, wrapped in one official `mistralai` client with
the SDK's own RetryConfig. `auto` means: a key (from `%mistral key`, the environment
or a `.env` file) selects La Plateforme; no key selects the offline server, which
starts on first use.

The La Plateforme key goes only to Mistral's own hosts (`MISTRAL_HOSTS`, over
https). A self-hosted `server_url` gets its own key, `MistralMagics.server_key` or
`MISTRAL_SERVER_KEY`, or none; the offline server gets its random key. Concurrent work runs on one private asyncio loop in a daemon
thread (`BackgroundLoop`), never on the kernel's thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

SERVERS = {
    "global": "https://api.mistral.ai",
    "eu": "https://api.eu.mistral.ai",
    "us": "https://api.us.mistral.ai",
}
BACKENDS = ("auto", "mistral", "offline")
MISTRAL_HOSTS = frozenset(urlsplit(url).hostname for url in SERVERS.values())

# Backoff for the SDK's RetryConfig: 0.5 s, 1 s, 2 s, ... capped at 8 s.
_INITIAL_MS = 500
_EXPONENT = 2.0
_MAX_INTERVAL_MS = 8000
_JITTER_MS = 100


def key_from_environment(cwd: str | os.PathLike | None = None) -> str | None:
    """MISTRAL_API_KEY from the environment, else from a `.env` file in the working directory."""
    key = os.environ.get("MISTRAL_API_KEY")
    if key:
        return key.strip()
    env_file = Path(cwd or os.getcwd()) / ".env"
    if env_file.is_file():
        from dotenv import dotenv_values

        key = dotenv_values(env_file).get("MISTRAL_API_KEY")
        if key:
            return key.strip()
    return None


def server_key_from_environment() -> str | None:
    """MISTRAL_SERVER_KEY: the key of a self-hosted server (never the La Plateforme key)."""
    key = os.environ.get("MISTRAL_SERVER_KEY")
    return key.strip() if key and key.strip() else None


def is_mistral_host(url: str | None) -> bool:
    """Whether `url` is one of Mistral's own API hosts over https (where its key may go)."""
    if not url:
        return False
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https" and parts.hostname in MISTRAL_HOSTS and port in (None, 443)
        and parts.username is None
    )


def retry_config(max_retries: int, status_codes: list[str] | None = None):
    """The SDK's RetryConfig for about `max_retries` retries (the SDK bounds retries by time).

    Retried: 429, 5xx and connection errors (or `status_codes`); the SDK honours
    `Retry-After`.
    """
    from mistralai.client.utils import BackoffStrategy, RetryConfig

    if max_retries <= 0:
        return RetryConfig("none", None, False)
    waits = [
        min(_INITIAL_MS * _EXPONENT**i, _MAX_INTERVAL_MS) + _JITTER_MS for i in range(max_retries)
    ]
    # The SDK stops retrying once this much time has passed since the first attempt;
    # the sum of the planned waits (minus a little) allows exactly max_retries waits.
    budget = int(sum(waits[:-1]) + waits[-1] / 2)
    strategy = BackoffStrategy(
        _INITIAL_MS, _MAX_INTERVAL_MS, _EXPONENT, budget, jitter_ms=_JITTER_MS
    )
    return RetryConfig("backoff", strategy, True, status_codes_override=status_codes)


@dataclass(frozen=True)
class BackendSpec:
    """What the settings ask for, resolved: kind, base URL and whether a key is needed."""

    kind: str  # "mistral" | "self-hosted" | "offline"
    url: str | None  # None for offline until its server runs

    @property
    def label(self) -> str:
        if self.kind == "mistral":
            return f"La Plateforme ({self.url})"
        if self.kind == "self-hosted":
            return f"self-hosted server ({self.url})"
        return "offline server (local, deterministic)"


def resolve(backend: str, server: str, server_url: str | None, key: str | None) -> BackendSpec:
    """Decide the backend from the settings and whether a key is known."""
    if backend not in BACKENDS:
        raise ConfigError(
            f"Unknown backend {backend!r}; set MistralMagics.backend to one of {', '.join(BACKENDS)}"
        )
    if backend == "offline":
        return BackendSpec("offline", None)
    if server_url:
        if not server_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"server_url {server_url!r} is not an http(s) URL; e.g. "
                "%config MistralMagics.server_url = 'http://localhost:8000'"
            )
        url = server_url.rstrip("/")
        if is_mistral_host(url):
            if not key:
                raise ConfigError(
                    f"server_url {url} is La Plateforme, which needs a key: run %mistral key "
                    "or set MISTRAL_API_KEY (or a .env file)"
                )
            return BackendSpec("mistral", url)
        return BackendSpec("self-hosted", url)
    if server not in SERVERS:
        raise ConfigError(
            f"Unknown server {server!r}; set MistralMagics.server to one of {', '.join(SERVERS)}"
        )
    if backend == "mistral" or key:
        if not key:
            raise ConfigError(
                "No Mistral API key: run %mistral key, set MISTRAL_API_KEY (or a .env file), "
                "or use MistralMagics.backend = 'offline'"
            )
        return BackendSpec("mistral", SERVERS[server])
    return BackendSpec("offline", None)


_offline_lock = threading.Lock()
_offline_server = None


def offline_server():
    """The process's offline server, started on first use and kept for the process's life."""
    global _offline_server
    with _offline_lock:
        if _offline_server is None:
            from ..offline import OfflineServer
            from ..offline.faults import DEMO_PACE

            # Paced like a hosted model (faster), so a stream is seen to stream.
            _offline_server = OfflineServer(faults=DEMO_PACE).start()
        return _offline_server


def offline_running() -> bool:
    return _offline_server is not None


_adapters: dict[str, Any] = {}


def _adapter(name: str, type_expr):
    if name not in _adapters:
        from pydantic import TypeAdapter

        _adapters[name] = TypeAdapter(type_expr)
    return _adapters[name]


def sdk_request(request: dict) -> dict:
    """The request's arguments for `chat.complete/stream`, with messages as SDK models.

    The SDK builds a throw-away pydantic model to validate every plain-dict argument
    on every call (about a quarter of a call's CPU); arguments that already are its
    models skip that. The plain dict stays the request of record (history, dry runs).
    """
    from mistralai.client import models

    args = dict(request)
    args["messages"] = _adapter(
        "messages", list[models.ChatCompletionRequestMessage]
    ).validate_python(request["messages"])
    if isinstance(request.get("response_format"), dict):
        args["response_format"] = _adapter("format", models.ResponseFormat).validate_python(
            request["response_format"]
        )
    return args


def key_for(spec: BackendSpec, platform_key: str | None, server_key: str | None) -> str | None:
    """The key a backend is sent: La Plateforme's only to Mistral's hosts, else the server's."""
    if spec.kind == "mistral" and is_mistral_host(spec.url):
        return platform_key
    if spec.kind == "self-hosted":
        return server_key
    return None


def _pools():
    """The SDK's two connection pools (sync and async), as it makes them, with one TLS
    context between them: loading the CA certificates is most of what making a client
    costs (about 20 ms a pool), and the SDK's own pools would load them twice."""
    from mistralai.client import sdk

    http = sdk.httpx  # the HTTP library this version of the SDK is built on
    tls = http.create_ssl_context()
    return (http.Client(follow_redirects=True, verify=tls),
            http.AsyncClient(follow_redirects=True, verify=tls))


class Backend:
    """One resolved backend: its spec, key, and the SDK client built for it.

    `key` is the La Plateforme key and `server_key` a self-hosted server's; each is
    sent only where it belongs (`key_for`).
    """

    def __init__(self, spec: BackendSpec, key: str | None, max_retries: int, timeout_s: float,
                 server_key: str | None = None):
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        if spec.kind == "offline":
            server = offline_server()
            spec = BackendSpec("offline", server.url)
            key = server.api_key
        else:
            key = key_for(spec, key, server_key)
        self.spec = spec
        self._key = key
        self._client = None
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def url(self) -> str | None:
        return self.spec.url

    @property
    def client(self):
        """The `mistralai` client; built on first use (importing the SDK is the slow part)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from mistralai.client import Mistral
                    from mistralai.client.httpclient import close_clients

                    key = str(self._key) if self._key else None
                    pools = _pools()
                    self._client = Mistral(
                        # A callable keeps the key out of the client's repr and config dumps;
                        # given even for no key, it stops the SDK from reading MISTRAL_API_KEY
                        # (or a service-account token) itself and sending it to any host.
                        api_key=lambda key=key: key,
                        server_url=self.spec.url,
                        retry_config=retry_config(self.max_retries),
                        timeout_ms=int(self.timeout_s * 1000),
                        client=pools[0], async_client=pools[1],
                    )
                    # Closed when the client is collected, as the SDK closes its own pools.
                    weakref.finalize(self._client, close_clients, self._client.sdk_configuration,
                                     pools[0], False, pools[1], False)
        return self._client

    def close(self, loop: BackgroundLoop | None = None) -> None:
        """Close the client's connections: the sync pool here, the async one on `loop`.

        The async pool's connections belong to the loop that opened them, so they are
        closed there; left to the garbage collector they would warn of unclosed sockets.
        """
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return
        config = client.sdk_configuration
        if config.client is not None:
            config.client.close()
        if config.async_client is not None and loop is not None and loop.running:
            future = loop.submit(config.async_client.aclose())
            if threading.current_thread() is not loop.thread:  # waiting on itself would hang
                future.result(5)

    def __repr__(self) -> str:
        return f"<Backend {self.spec.label}>"


class BackgroundLoop:
    """One private asyncio loop in a daemon thread for concurrent work (extraction, panels)."""

    def __init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="mistral_magic-loop", daemon=True
                )
                self._thread.start()
        return self._loop

    @property
    def running(self) -> bool:
        """Whether the loop has been started (and not stopped)."""
        return self._loop is not None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def submit(self, coro: Coroutine[Any, Any, Any]):
        """Schedule a coroutine on the loop; returns a concurrent.futures.Future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the loop and wait; an interrupt cancels it and re-raises."""
        future = self.submit(coro)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def stop(self) -> None:
        """Finish open async generators (streams), then stop and close the loop."""
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(5)
        except Exception:  # a stuck generator must not keep the kernel from unloading
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()


async def close_error_response(exc: BaseException) -> None:
    """Close the response an SDK error left open, so it is not finalised after the loop ends."""
    response = getattr(exc, "raw_response", None)
    if response is not None:
        try:
            await response.aclose()
        except Exception:  # already broken: nothing more to release
            pass
