"""What `%mistral history|chats|usage|models|config|cache` return: values, not prints.

Each table is a DataFrame (a `Table`, which derived frames are not) that shows itself
whole: every row of a short table (`%mistral models` lists every model), cells in full
(`%mistral config`'s help). In a terminal it is a table drawn by rich at the terminal's
width with the columns that matter (`terminal.table_text`), and a line naming the others.
Each starts with what a row is (model, tokens in; turn, role, text) and ends with what it
cost (tokens out, cost, status).

Values read plainly: one missing marker, ``<NA>`` (text columns are pandas strings,
numbers nullable), times to the second, latencies to the hundredth, cell ids short.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .masked import mask

HISTORY_COLUMNS = ["turn", "role", "text", "chat", "model", "cell", "status", "tokens", "cost"]
USAGE_COLUMNS = ["model", "prompt_tokens", "completion_tokens", "pages", "cached_tokens",
                 "audio_minutes", "characters", "kind", "chat", "time", "backend", "error",
                 "latency_s", "ttft_s", "cached", "cached_saved", "cost", "status"]
CHATS_COLUMNS = ["chat", "turns", "in_context", "system", "tokens", "cost", "conversation"]
PREVIEW = 48  # characters of a message in `%mistral history` (the chat keeps all of it)
CELL_ID = 8  # characters of a cell id shown (Lab's ids are 36-character UUIDs)
# The columns a terminal shows of each table (the frame keeps all of them).
TERMINAL_COLUMNS = {
    "history": ["turn", "role", "text", "chat", "status", "tokens", "cost"],
    "usage": ["model", "prompt_tokens", "completion_tokens", "pages", "kind", "chat", "cost",
              "status"],
    "models": ["id", "context", "reasoning", "tools", "vision", "input_per_1m", "output_per_1m",
               "per_1k_pages"],
}


@functools.cache
def _table_class():
    import pandas as pd

    class Table(pd.DataFrame):
        """A `%mistral` table: shown whole (short tables), in a terminal as a rich table."""

        _metadata = ["terminal_columns"]

        @property
        def _constructor(self):
            return pd.DataFrame  # a frame made from this one is an ordinary DataFrame

        def _options(self):
            rows = len(self) if len(self) <= _SHORT_ROWS else None
            return pd.option_context("display.max_rows", rows or 60, "display.min_rows", 20,
                                     "display.max_columns", None, "display.max_colwidth", None)

        def __repr__(self) -> str:
            from . import terminal

            if terminal.is_terminal():
                return terminal.table_text(self, getattr(self, "terminal_columns", None))
            with self._options():
                return super().__repr__()

        def _repr_html_(self):
            with self._options():
                return super()._repr_html_()

    Table.__qualname__ = Table.__name__
    return Table


_SHORT_ROWS = 200


def table(frame, terminal_columns: list[str] | None = None):
    """`frame` as a `Table` (shown whole; in a terminal, `terminal_columns` when given)."""
    shown = _table_class()(frame)
    shown.terminal_columns = terminal_columns
    return shown


def _plainly(frame, text: list[str] = (), money: list[str] = (), seconds: list[str] = ()):
    """One missing marker: text as pandas strings, money as nullable floats, times (seconds,
    minutes) as nullable floats rounded to two decimals."""
    types = {c: "string" for c in text if c in frame}
    types.update({c: "Float64" for c in money if c in frame})
    frame = frame.astype(types)
    for column in seconds:
        if column in frame:
            frame[column] = frame[column].astype("Float64").round(2)
    return frame


def short_id(cell_id: str | None) -> str | None:
    """A cell id as shown: its first characters (a UUID's first group)."""
    return None if cell_id is None else cell_id[:CELL_ID]


def history_frame(session, chat: str):
    """One row per message of a chat: turn, role, text preview, ..., status, tokens, cost."""
    import pandas as pd

    rows = session.chats.get(chat).rows(PREVIEW) if chat in session.chats else []
    for row in rows:
        row["cell"] = short_id(row["cell"])
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS).astype({"turn": "Int64", "tokens": "Int64"})
    frame = _plainly(frame, ["role", "text", "chat", "model", "cell", "status"], ["cost"])
    return table(frame, TERMINAL_COLUMNS["history"])


def chats_frame(session):
    """One row per chat: turns, tokens, cost, system prompt, its Conversations API conversation."""
    import pandas as pd

    rows = []
    for chat in session.chats:
        turns = chat.turns
        rows.append(
            {
                "chat": chat.name,
                "turns": len(turns),
                "in_context": sum(t.in_context for t in turns),
                "tokens": sum((t.prompt_tokens or 0) + (t.completion_tokens or 0) for t in turns),
                "cost": sum(t.cost for t in turns if t.cost is not None),
                "system": chat.system,
                # the server-side conversation its last turn ended in (a cell with built-in tools)
                "conversation": next((t.conversation["id"] for t in reversed(turns)
                                      if t.conversation), None),
            }
        )
    frame = pd.DataFrame(rows, columns=CHATS_COLUMNS).astype(
        {"turns": "Int64", "in_context": "Int64", "tokens": "Int64"})
    return table(_plainly(frame, ["chat", "system"], ["cost"]))


def usage_frame(session):
    """The ledger: one row per API call, times to the second."""
    frame = session.ledger.to_frame()
    frame["time"] = frame["time"].dt.round("s")
    return table(_usage_plainly(frame[USAGE_COLUMNS]), TERMINAL_COLUMNS["usage"])


def _usage_plainly(frame):
    return _plainly(frame, ["model", "kind", "chat", "backend", "error", "status", "session"],
                    ["cost", "cached_saved"], ["latency_s", "ttft_s", "audio_minutes"])


def usage_all_frame(session):
    """Every kernel's calls in this folder (the store's ledger) with this kernel's own, by time.

    This kernel's rows come from its ledger, so they are there with the cache off too.
    """
    import pandas as pd

    mine = session.ledger.to_frame()
    mine.insert(1, "session", session.responses.id)
    others = session.responses.guarded(lambda store: store.ledger.frame(), None)
    if others is not None:
        others = others[others["session"] != session.responses.id]
    frames = [f for f in (others, mine) if f is not None and len(f)]
    frame = pd.concat(frames, ignore_index=True) if frames else mine
    frame = frame.astype(mine.dtypes.to_dict()).sort_values("time", kind="stable")
    frame["time"] = frame["time"].dt.round("s")
    after = USAGE_COLUMNS.index("time") + 1
    columns = USAGE_COLUMNS[:after] + ["session"] + USAGE_COLUMNS[after:]
    return table(_usage_plainly(frame[columns].reset_index(drop=True)), TERMINAL_COLUMNS["usage"])


def models_frame(session, listing):
    """The models of `listing` (the backend's ``models.list``): context, what each can do
    (reason, call tools, see images, read documents), capabilities and list prices (per 1M
    tokens; an OCR model's per 1,000 pages).

    ``documents`` comes from the model catalogue (Mistral's docs: document chunks in chat),
    which the API's cards do not carry; NA for a model the catalogue does not know.
    """
    import pandas as pd

    from ..offline import catalogue

    prices = session.prices
    rows = []
    for card in listing.data or []:
        capabilities = getattr(card, "capabilities", None)
        flags = capabilities.model_dump() if capabilities is not None else {}
        caps = [name for name, on in flags.items() if on is True]
        price = prices.price(card.id)
        entry = prices.entry(card.id)
        per_page = entry.per_page if entry is not None else None
        known = catalogue.find(card.id)
        rows.append(
            {
                "id": card.id,
                "aliases": ", ".join(getattr(card, "aliases", None) or []),
                "context": getattr(card, "max_context_length", None),
                "reasoning": flags.get("reasoning"),
                "tools": flags.get("function_calling"),
                "vision": flags.get("vision"),
                "documents": None if known is None else known.documents,
                "capabilities": ", ".join(caps),
                "input_per_1m": price[0] if price else None,
                "output_per_1m": price[1] if price else None,
                "per_1k_pages": None if per_page is None else round(per_page * 1000, 6),
            }
        )
    columns = ["id", "aliases", "context", "reasoning", "tools", "vision", "documents",
               "capabilities", "input_per_1m", "output_per_1m", "per_1k_pages"]
    flag = dict.fromkeys(("reasoning", "tools", "vision", "documents"), "boolean")
    frame = pd.DataFrame(rows, columns=columns).astype({"context": "Int64", **flag})
    frame = _plainly(frame, ["id", "aliases", "capabilities"],
                     ["input_per_1m", "output_per_1m", "per_1k_pages"])
    return table(frame, TERMINAL_COLUMNS["models"])


FINE_TUNED_COLUMNS = ["id", "name", "base", "archived", "created", "description", "context",
                      "input_per_1m", "output_per_1m", "job"]


def fine_tuned_frame(session, listing):
    """The account's fine-tuned models in `listing` (cards of type ``fine-tuned``): id, name,
    base model, archived, created (UTC), description, context, the prices they are charged
    (their base model's unless `prices.json` or ``MistralMagics.prices`` names the id; NaN
    when unknown, never 0) and the job that made them."""
    import pandas as pd

    prices = session.prices
    rows = []
    for card in listing.data or []:
        if getattr(card, "type", None) != "fine-tuned":
            continue
        price = prices.price(card.id)
        created = getattr(card, "created", None)
        rows.append({
            "id": card.id, "name": getattr(card, "name", None), "base": card.root,
            "archived": bool(getattr(card, "archived", False)),
            "created": created if isinstance(created, int) else None,
            "description": getattr(card, "description", None),
            "context": getattr(card, "max_context_length", None),
            "input_per_1m": price[0] if price else None,
            "output_per_1m": price[1] if price else None,
            "job": getattr(card, "job", None),
        })
    frame = pd.DataFrame(rows, columns=FINE_TUNED_COLUMNS)
    frame["created"] = pd.to_datetime(frame["created"], unit="s", utc=True).astype("datetime64[ns, UTC]")
    return frame.astype({"archived": "boolean", "context": "Int64", "input_per_1m": "float64",
                         "output_per_1m": "float64"})


def config_frame(magics):
    """Effective settings, the backend in use and the key (masked) with where it came from."""
    import os

    import pandas as pd

    session = magics.session
    rows = []
    for name, trait in sorted(magics.traits(config=True).items()):
        value = getattr(magics, name)
        shown = mask(value) if name == "server_key" else _value(value)
        rows.append({"setting": name, "value": shown, "help": trait.help})
    source = _source((session._key, "from %mistral key (memory)"),
                     (os.environ.get("MISTRAL_API_KEY"), "from MISTRAL_API_KEY"),
                     (session.key, "from a .env file"))
    rows.append({"setting": "key", "value": mask(session.key),
                 "help": f"{source}; sent only to Mistral's hosts"})
    source = _source((magics.server_key, "from MistralMagics.server_key"),
                     (session.server_key, "from MISTRAL_SERVER_KEY"))
    rows.append({"setting": "server key", "value": mask(session.server_key),
                 "help": f"{source}; sent only to server_url"})
    try:
        label = session.backend_spec().label
    except Exception as exc:  # show a broken setting here rather than fail the listing
        label = f"unusable: {exc}"
    rows.append({"setting": "backend in use", "value": label, "help": "%mistral backend"})
    return table(pd.DataFrame(rows, columns=["setting", "value", "help"]).astype("string"))


def _value(value) -> str:
    """A setting's value as read: text without quotes, None as (none), the rest as Python."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return repr(value)


def _source(*places: tuple) -> str:
    """Where a key came from: the label of the first place that holds one."""
    return next((label for value, label in places if value), "not set")


def cache_info(responses) -> CacheInfo:
    """What ``%mistral cache`` shows."""
    stats = responses.store.stats()
    return CacheInfo(responses.mode, stats.path, stats.entries, stats.size_bytes, stats.hits,
                     stats.saved_usd, stats.unpriced_hits, stats.records, stats.calls,
                     stats.readonly)


@dataclass(frozen=True)
class CacheInfo:
    """``%mistral cache``: where the store is, its answers and size, and the money they saved."""

    mode: str
    path: str
    entries: int
    size_bytes: int
    hits: int
    saved_usd: float
    unpriced_hits: int
    records: int
    calls: int
    readonly: bool

    def rows(self) -> list[tuple[str, str]]:
        from ..money.usage import format_cost

        saved = format_cost(self.saved_usd)
        if self.unpriced_hits:
            saved += f" (+ {self.unpriced_hits:,} of unknown price)"
        where = shown_path(self.path) + (" (read-only)" if self.readonly else "")
        return [
            ("cache", f"{self.mode} · {where}"),
            ("answers", f"{self.entries:,} ({_size(self.size_bytes)} on disk)"),
            ("reused", f"{self.hits:,} time{'' if self.hits == 1 else 's'}, saved {saved}"),
            ("finished rows", f"{self.records:,} (row jobs resume from them)"),
            ("ledger", f"{self.calls:,} call{'' if self.calls == 1 else 's'} from every "
                       "kernel here (%mistral usage --all)"),
        ]

    def __repr__(self) -> str:
        return "\n".join(f"{name:<14}{value}" for name, value in self.rows())

    def _repr_html_(self) -> str:
        from . import render

        return render.table(["response cache", ""], self.rows())


def shown_path(path) -> str:
    """A local path as shown in a notebook: relative to the working directory (the notebook's
    folder) when inside it, else from ``~`` when in the home folder; never /home/<user>/…."""
    import os
    from pathlib import Path

    target = Path(path).expanduser().absolute()
    for base, shown in ((Path.cwd(), ""), (Path.home(), "~")):
        try:
            inside = target.relative_to(base.absolute())
        except ValueError:
            continue
        return str(Path(shown) / inside) if shown else str(inside) or "."
    return os.fspath(path)


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:,} bytes"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:,.1f} {unit}"
