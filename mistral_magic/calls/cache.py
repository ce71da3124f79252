"""The response cache and the resume state of row jobs, kept in the folder's store.

Every successful chat call (a cell streamed or not, its ``--json``/``--schema``
re-asks, the chat panel, each extraction row and re-ask) is kept in
`mistral_magic.store` under its exact request: `request_key` of the backend and the
request dict (model, messages, parameters, seed, response format, tools), with its
usage and cost at the time, and the notebook and cell that asked when they are known.
The backend is "offline" for the offline server (whatever its port) and the server's
URL otherwise, so an offline answer never answers a hosted request.

``MistralMagics.cache`` says what is read back:

- ``"on"`` (the default): a cell that has not run yet in this kernel (a fresh
  kernel, Restart & Run All) gets the stored answer to its exact request, marked
  cached, at $0 and with the saving shown. Running a cell again in the same kernel
  asks again and replaces the entry, as ``--refresh`` always does. A cell with no
  cell id (a terminal, nbclient) counts as run once this kernel answered its exact
  request. An extraction row whose stored answer fits its columns is served from the
  cache; the rows an earlier run finished (re-asks included) resume from
  ``store.records``; a row that failed is asked again. The chat panel always sends:
  each Send is a new question.
- ``"replay"``: nothing is ever sent and the offline server is not started. Cells,
  rows and their re-asks, and panel messages are answered from the cache, or fail
  with `ReplayMiss`, one line naming the prompt, its cell and the fix. With no key,
  answers recorded on La Plateforme are found too (a teacher's, shipped in a file
  that ``MistralMagics.cache_path`` points at).
- ``"off"``: the store is neither read nor written by calls: finished rows are kept
  in memory for the kernel's life, and the ledger is this kernel's only. The
  ``%mistral cache`` and ``%mistral usage --all`` commands still read it.

A stored answer keeps a thinking model's reasoning and a tool step's calls: a
replayed ``--tools`` cell is served its tool calls, runs the tools again (they are
the notebook's own code, and may draw plots), and its next step is served when the
tools gave the same results (its request is then the same), else sent. Tool calls
served from a *foreign* answer (one this user's key did not sign: imported, shipped
with ``cache_path``, written elsewhere, edited; see `mistral_magic.store.provenance`)
are data: each is shown and needs a yes before it runs (`mistral_magic.toolloop`).

A cached answer sends nothing, holds nothing against the budget and counts no
tokens; it goes in the ledger with ``cached=True`` and cost 0. Every ledger row is
also kept in the store with this kernel's id (``%mistral usage --all``). A store that
cannot be used is said once and calls go on without it (in replay it is the error).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from ..errors import ConfigError, ReplayMiss, one_line

log = logging.getLogger(__name__)

MODES = ("on", "off", "replay")
#: the records' job: a row is known by its request, whatever the job that sent it
ROWS = "rows"
#: when a call may be answered from the cache: "cell" by the cell rule (and replay),
#: "replay" only when replaying (extraction rows' calls, the chat panel, --refresh)
Reuse = Literal["cell", "replay"]


def request_key(backend: str | None, request: Mapping[str, Any]) -> str:
    """The cache key of a request sent to a backend (`mistral_magic.store.request_key`)."""
    from ..store import request_key as key

    return key(backend, request)


def identity(kind: str, url: str | None) -> str:
    """The backend as a cache key knows it: "offline" (any port), else the server's URL."""
    return "offline" if kind == "offline" else (url or kind)


class MemoryCache:
    """Finished rows by request key, in memory (the cache is off); safe from several threads."""

    def __init__(self) -> None:
        self._records: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        """The record kept for `key`, or None."""
        with self._lock:
            return self._records.get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The records kept among `keys`."""
        with self._lock:
            return {k: self._records[k] for k in keys if k in self._records}

    def put(self, key: str, record: Any) -> None:
        """Keep `record` for `key` (replacing what was there)."""
        with self._lock:
            self._records[key] = record

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        with self._lock:
            self._records.update(items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()


_WRITER: list = []


def row_writer():
    """The one thread that keeps row jobs' finished rows, in the order they finished.

    One thread, not the loop's pool: the store takes one writer at a time anyway, and
    each thread that makes rows' stored forms keeps its own heap for them (a 10,000-row
    embedding's peak memory grew by a tenth more with the pool's threads taking turns).
    """
    if not _WRITER:
        from concurrent.futures import ThreadPoolExecutor

        _WRITER.append(ThreadPoolExecutor(1, thread_name_prefix="mistral_magic-store"))
    return _WRITER[0]


class StoredRows:
    """Finished rows in the store's ``records`` (`Session.cache` while the cache is on or
    replaying): the same call after a restart pays only for the rest."""

    def __init__(self, responses: Responses):
        self._responses = responses

    def get(self, key: str) -> Any | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The finished rows among `keys`, in one query per 500 keys."""
        keys = list(keys)
        return self._responses.guarded(lambda store: store.records.get_many(ROWS, keys), {})

    def put(self, key: str, record: Any) -> None:
        self.put_many([(key, record)])

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Keep finished rows; a replay keeps nothing (its answers are in the store already).

        `items` may be made as they are written (a generator): none is kept longer.
        """
        if self._responses.mode == "on":
            self._responses.guarded(lambda store: store.records.put(ROWS, items), 0, write=True)

    def __len__(self) -> int:
        return self._responses.guarded(lambda store: store.records.count(ROWS), 0)

    def clear(self) -> None:
        """Forget every finished row and every stored answer (``%mistral cache clear``)."""
        self._responses.clear()


class Responses:
    """The response cache of one session: what is served from the store, and what is kept."""

    def __init__(self, session):
        self.session = session
        #: names this kernel's rows in the store's ledger
        self.id = os.urandom(6).hex()
        self.memory = MemoryCache()
        # Marks, added from the kernel's thread and the background loop (under `_marks`):
        self.used: set[str] = set()  # keys stored or served here: what an export takes
        self.answered: set[str] = set()  # requests answered here (cells without an id)
        self.cells: set[str] = set()  # cell ids answered here: a re-run asks again
        self._marks = threading.Lock()
        self._store = None
        self._store_for: Any = None
        self._lock = threading.Lock()
        self._said: set[str] = set()

    @property
    def mode(self) -> str:
        return self.session.settings.cache

    @property
    def store(self):
        """The store at ``MistralMagics.cache_path``, opened lazily, reopened when it moves."""
        path = self.session.settings.cache_path or None
        with self._lock:
            if self._store is None or self._store_for != path:
                from ..store import Store

                if self._store is not None:
                    self._store.close()
                self._store = Store(path, session=self.id, secrets=self._secrets)
                self._store_for = path
            return self._store

    def _secrets(self) -> list[str | None]:
        return [self.session.key, self.session.server_key]

    @property
    def rows(self):
        """Where row jobs keep finished rows: the store, or memory when the cache is off."""
        return self.memory if self.mode == "off" else StoredRows(self)

    @property
    def notebook(self) -> str | None:
        """The notebook's file name, when the front end says (Jupyter, VS Code)."""
        namespace = getattr(self.session.shell, "user_ns", None) or {}
        for name in (namespace.get("__session__"), namespace.get("__vsc_ipynb_file__"),
                     os.environ.get("JPY_SESSION_NAME")):
            if isinstance(name, str) and name.strip():
                # The name only: a shipped answers file does not carry the teacher's folders.
                return os.path.basename(name.strip().rstrip("/\\")) or None
        return None

    def identities(self) -> list[str]:
        """The backends whose answers fit, the one answers are kept for last.

        Replaying needs no key: the backend the settings give with a key comes first
        (La Plateforme, where a teacher recorded), then the one they give now (offline).
        """
        from .backend import resolve

        if self.mode != "replay":
            spec = self.session.backend_spec()
            return [identity(spec.kind, spec.url)]
        s = self.session.settings
        keyed = resolve(s.backend, s.server, s.server_url, self.session.key or "no key needed")
        found = [identity(keyed.kind, keyed.url)]
        try:
            spec = self.session.backend_spec()
        except ConfigError:  # e.g. backend "mistral" with no key: replaying needs none
            return found
        own = identity(spec.kind, spec.url)
        return found if own in found else [*found, own]

    def guarded(self, action: Callable[[Any], Any], default: Any, *, write: bool = False):
        """`action(store)`; a store that cannot be used is said once and `default` returned.

        Replaying, a store that cannot be read is the error; a write it refuses (a
        shipped file in a read-only folder) is skipped quietly.
        """
        from ..store import StoreError

        try:
            return action(self.store)
        except StoreError as exc:
            if self.mode == "replay":
                if write:
                    return default
                raise
            self._say(f"mistral_magic: the response cache is not used: {exc}")
            return default

    def _say(self, text: str) -> None:
        if text in self._said:
            return
        self._said.add(text)
        if threading.current_thread() is threading.main_thread():
            self.session.notice(f"store:{text}", text)
        else:  # a display from the background loop would land in whichever cell runs
            log.warning("%s", text)

    # -- reading --------------------------------------------------------------------

    def fresh(self, request: Mapping[str, Any]) -> bool:
        """Whether the running cell has not been answered in this kernel yet."""
        cell = self.session.cell_id
        key = None if cell is not None else self.key(request)
        with self._marks:
            return cell not in self.cells if cell is not None else key not in self.answered

    def key(self, request: Mapping[str, Any]) -> str:
        """The key this backend keeps `request`'s answer under."""
        return request_key(self.identities()[-1], request)

    def lookup(self, requests: list[Mapping[str, Any]], *, count: bool = False) -> list:
        """The stored `Entry` (or None) for each request, in one query; `count` counts hits."""
        return self.lookup_keys([self.keys_of(r) for r in requests], count=count)

    def keys_of(self, request: Mapping[str, Any]) -> list[str]:
        """The keys `request` may be stored under (one per identity it may have been sent as)."""
        return [request_key(i, request) for i in self.identities()]

    def lookup_keys(self, keys: list[list[str]], *, count: bool = False) -> list:
        """The stored `Entry` (or None) for each request's `keys_of`, in one query."""
        notebook, cell = self.notebook, self.session.cell_id
        found = self.guarded(lambda store: store.get_many(
            [k for ks in keys for k in ks], hit=count, notebook=notebook, cell=cell), {})
        return [next((found[k] for k in ks if k in found), None) for ks in keys]

    def serve(self, request: dict, *, chat: str | None = None, kind: str = "chat",
              reuse: Reuse = "replay"):
        """The stored answer to `request` as a recorded cached `Answer`, or None to send it.

        Raises `ReplayMiss` when replaying and nothing is stored for it.
        """
        mode = self.mode
        if mode == "off" or (mode == "on" and not (reuse == "cell" and self.fresh(request))):
            return None
        started = time.perf_counter()
        entry = self.lookup([request], count=True)[0]
        if entry is None:
            if mode == "replay":
                raise ReplayMiss(self.missing(request))
            return None
        return self.served(entry, request, chat, kind, time.perf_counter() - started)

    def served(self, entry, request: dict, chat: str | None, kind: str, latency_s: float = 0.0):
        """A stored entry as the call's `Answer`: recorded in the ledger (cached, $0)."""
        from ..money.usage import CallRecord
        from ..show.answer import Answer

        response = entry.response if isinstance(entry.response, dict) else {}
        answer = Answer(
            text=stored_text(entry), model=entry.model or request["model"],
            chat=chat, status="ok", request=request, prompt_tokens=entry.prompt_tokens,
            completion_tokens=entry.completion_tokens, cost=0.0, latency_s=latency_s,
            finish_reason=response.get("finish_reason"), backend=entry.backend or "offline",
            streamed=False, cached=True, saved=entry.cost, foreign=entry.foreign,
            thinking=str(response.get("thinking") or ""),
            tool_calls=list(response.get("tool_calls") or []),
        )
        if isinstance(response.get("research"), dict):
            from ..show.sources import Research

            answer.research = Research.from_stored(response["research"])
            if entry.foreign:  # data, not a say in which conversation the next call continues
                answer.research.link = None
        if answer.thinking:
            from ..money.tokens import THINK_MARKERS, count_text

            answer.thinking_tokens = count_text(answer.thinking) + THINK_MARKERS
        self.session.ledger.record(CallRecord(
            model=answer.model, chat=chat, kind=kind, prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens, cost=0.0, latency_s=latency_s,
            status="ok", backend=answer.backend, cached=True,
        ))
        self._mark(used=entry.key, answered=self.key(request))
        return answer

    def served_rows(self, pairs: list[tuple[Any, dict]], kind: str) -> None:
        """Rows answered from stored entries (`(entry, request)` pairs): hits and ledger rows."""
        if not pairs:
            return
        notebook, cell = self.notebook, self.session.cell_id
        keys = [entry.key for entry, _ in pairs]
        self.guarded(lambda store: store.get_many(keys, notebook=notebook, cell=cell), {})
        for entry, request in pairs:
            self.served(entry, request, None, kind)

    def missing(self, request: Mapping[str, Any]) -> str:
        """The one line a replay miss says: which prompt and cell, and the fix."""
        content = request["messages"][-1].get("content") if request.get("messages") else ""
        if not isinstance(content, str):
            content = " ".join(c.get("text", "") for c in content or [] if isinstance(c, dict))
        preview = one_line(content, 60) or "(empty prompt)"
        cell = self.session.cell_id
        where = f"«{preview}»" + (f" (cell {cell})" if cell else "")
        return (
            f"No stored answer for {where} in {self.store.path}, and MistralMagics.cache is "
            "'replay', which never sends: point MistralMagics.cache_path at the answers file "
            "you were given, or record it with %config MistralMagics.cache = 'on'"
        )

    # -- writing --------------------------------------------------------------------

    def ran(self, cell_id: str | None) -> None:
        """The running cell has been answered: running it again in this kernel asks again."""
        if cell_id is not None:
            with self._marks:
                self.cells.add(cell_id)

    def _mark(self, *, used: str | None = None, answered: str | None = None) -> None:
        with self._marks:
            if used is not None:
                self.used.add(used)
            if answered is not None:
                self.answered.add(answered)

    def keep(self, call) -> None:
        """Store a successful call's answer (the cache on) under the request it answers.

        An answer cut short by the budget's cap answers only the capped request.
        """
        answer = call.answer
        capped = answer.budget_capped and answer.finish_reason == "length"
        key = request_key(call.cache_as, answer.request if capped else call.asked)
        self._mark(answered=key)
        if self.mode != "on":
            return
        response = {"text": answer.text, "finish_reason": answer.finish_reason}
        # A tool step's calls and a thinking model's reasoning are served back too: on a
        # hit the tools run again locally, and the next step's request must match.
        response.update({k: v for k, v in (("thinking", answer.thinking),
                                           ("tool_calls", answer.tool_calls)) if v})
        if answer.research is not None:  # a conversation's sources, tool runs and pictures
            response["research"] = answer.research.stored()
        notebook, cell = self.notebook, self.session.cell_id
        self.guarded(lambda store: store.put(
            key, response, kind=call.kind, model=answer.model, backend=answer.backend,
            prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
            cost=answer.cost, notebook=notebook, cell=cell), None, write=True)
        self._mark(used=key)

    def persist(self, record) -> None:
        """Keep a ledger row in the store too (a ledger subscriber); not with the cache off."""
        if self.mode != "off":
            self.guarded(lambda store: store.ledger.append([record]), 0, write=True)

    # -- the commands ---------------------------------------------------------------

    def clear(self) -> int:
        """Forget every stored answer and finished row; the ledger stays. How many answers."""
        self.memory.clear()
        with self._marks:
            self.used.clear()
        return self.store.clear()

    def export_keys(self) -> list[str]:
        """What this notebook used: the entries it stored or was served, in any kernel, when
        the front end names it; else those this kernel stored or was served."""
        notebook = self.notebook
        if notebook is None:
            with self._marks:
                return sorted(self.used)
        return self.store.keys(notebook=notebook)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None


def stored_text(entry) -> str:
    """The answer text of a stored entry."""
    response = entry.response
    return str(response.get("text") or "") if isinstance(response, dict) else str(response)
