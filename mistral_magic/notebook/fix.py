"""`%mistral fix` and `Err`: the last error explained and its cell corrected; recent tracebacks as data.

    %mistral fix                    # explain the last error, corrected cell as the next cell
    %%mistral
    Why does this fail? {Err[-1]}   # the last traceback, as text, in any prompt

After every cell that raised, the extension keeps the error (`Recent.after_cell`, an
IPython ``post_run_cell`` hook, which sees the cell's own source and exception).
``Err`` in the notebook's namespace holds the last `KEEP` of them, newest last, each
a `CellError`: a str, the traceback as plain text (IPython's own frames left out),
with ``.source`` (the cell that raised), ``.name`` (the exception's type) and
``.cell_id``. So ``{Err[-1]}`` in a prompt is the last traceback and
``{Err[-1].source}`` its cell (interpolation still refuses names starting with ``_``).
A key in use (``MISTRAL_API_KEY``, ``MISTRAL_SERVER_KEY``, ``%mistral key``) is
written ``[redacted]`` in both, so no error sends or shows one.
``Err`` is put in the namespace only when the name is free, and is left out of
``%who``. Errors of the extension's own one-line kinds (``UsageError``, a
``MistralMagicError`` such as a refused budget) and interrupts are not kept: their
message already says what to do.

``%mistral fix [-m MODEL]`` first shows which error it is fixing (its type, message and
cell), then sends the last error's traceback and cell to the model,
asking for two or three sentences on what went wrong and the whole corrected cell in
one code block. The answer streams into the output through the one render path (so
it is shown, never run as markup), the call is budgeted and recorded like any other
(kind "fix"), and the code block becomes the next cell. With no error kept, or when
the cell that raised has run without error since, it says in one line that there is
nothing to fix.
"""

from __future__ import annotations

import os
import traceback
from collections import deque

KEEP = 10
SHOWN_LINES = 12  # lines of the failing cell shown above the explanation
MAX_TRACEBACK = 6000  # characters of a traceback sent; its end (where the error is) is kept
MAX_SOURCE = 12000

SYSTEM = (
    "You fix Python code in Jupyter notebook cells. Given a cell and the error it raised, "
    "explain in two or three sentences what went wrong, then give the whole corrected cell "
    "in one ```python code block. Change only what the fix needs."
)


class CellError(str):
    """A cell's error: the traceback as text, with the cell's source, the error's type and cell id."""

    source: str = ""
    name: str = ""
    cell_id: str | None = None
    resolved: bool = False  # the cell ran without error since

    def __repr__(self) -> str:
        return f"<CellError {self.name}: {len(self.splitlines())} lines of traceback>"


def _ipython_dir() -> str:
    import IPython

    return os.path.dirname(IPython.__file__) + os.sep


def traceback_text(exc: BaseException) -> str:
    """The traceback as plain text, from the cell's frame on (IPython's own frames left out)."""
    tb, ours = exc.__traceback__, _ipython_dir()
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(ours):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")
    return text if len(text) <= MAX_TRACEBACK else "…" + text[-MAX_TRACEBACK:]


def _kept(exc: BaseException) -> bool:
    from IPython.core.error import UsageError

    from ..errors import MistralMagicError

    return not isinstance(exc, (UsageError, MistralMagicError, KeyboardInterrupt))


class Recent:
    """The errors of the last cells that raised (`Err`), and the hook that keeps them;
    `keys()` gives the keys in use, to redact."""

    def __init__(self, keys=None):
        self.errors: deque[CellError] = deque(maxlen=KEEP)
        self.keys = keys

    def after_cell(self, result) -> None:
        """IPython's post_run_cell: keep a cell's error; a cell that raised and now runs is fixed."""
        exc = result.error_in_exec or result.error_before_exec
        info = result.info
        source = getattr(info, "raw_cell", "") or ""
        cell_id = getattr(info, "cell_id", None)
        if exc is None:
            last = self.errors[-1] if self.errors else None
            if last is not None and (last.cell_id == cell_id if cell_id else last.source == source):
                last.resolved = True
            return
        if not _kept(exc):
            return
        from ..store.secrets import Scrubber

        keys = Scrubber(self.keys).secrets()
        error = CellError(Scrubber.text(traceback_text(exc), keys))
        error.source = Scrubber.text(source, keys)
        error.name, error.cell_id = type(exc).__name__, cell_id
        self.errors.append(error)

    def last(self) -> CellError | None:
        """The newest error, unless its cell has run without error since."""
        if self.errors and not self.errors[-1].resolved:
            return self.errors[-1]
        return None


def install(shell, magics) -> None:
    """Keep errors from now on, and name them `Err` in the namespace when the name is free."""
    session = magics.session
    magics.recent = recent = Recent(lambda: (session.key, session.server_key))
    shell.events.register("post_run_cell", recent.after_cell)
    if "Err" not in shell.user_ns:
        shell.push({"Err": recent.errors}, interactive=False)


def uninstall(shell, magics) -> None:
    """Stop keeping errors; `Err` leaves the namespace if it is still ours."""
    recent = getattr(magics, "recent", None)
    if recent is None:
        return
    try:
        shell.events.unregister("post_run_cell", recent.after_cell)
    except ValueError:  # already gone
        pass
    if shell.user_ns.get("Err") is recent.errors:
        del shell.user_ns["Err"]
        shell.user_ns_hidden.pop("Err", None)


def message(error: CellError) -> str:
    """The error's own line, as Python printed it ("KeyError: 'status'")."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    last = lines[-1].strip() if lines else error.name
    return last if last.startswith(error.name) else f"{error.name}: {last}"


def heading(error: CellError) -> str:
    """What is being fixed, in Markdown: the error's type and message, then its cell."""
    from ..show.render import code_span, fence

    lines = error.source.splitlines()
    shown = "\n".join(lines[:SHOWN_LINES]) + ("\n…" if len(lines) > SHOWN_LINES else "")
    return f"Fixing {code_span(message(error))}, raised by this cell:\n\n{fence(shown, 'python')}"


def messages(error: CellError) -> list[dict]:
    """The chat messages that ask for the explanation and the corrected cell."""
    from ..show.render import fence

    source = error.source if len(error.source) <= MAX_SOURCE else error.source[:MAX_SOURCE] + "\n…"
    prompt = (f"This notebook cell failed:\n\n{fence(source, 'python')}\n\n"
              f"It raised {error.name}:\n\n{fence(str(error))}\n\n"
              "Explain the error in two or three sentences, then give the corrected cell.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def run(magics, model: str | None = None) -> str | None:
    """`%mistral fix`: explain the last error and put the corrected cell in the next cell;
    returns a line to show when there is nothing to fix or no code came back."""
    from ..core import chat_request
    from ..show.display import StreamView
    from ..show.markdown import first_code_block

    error = magics.recent.last()
    if error is None:
        if magics.recent.errors:
            return (f"Nothing to fix: the cell that raised the last error "
                    f"({magics.recent.errors[-1].name}) has run without error since.")
        return "Nothing to fix: no cell has raised an error since the extension was loaded."
    magics.session.capabilities.check(model or magics.model,
                                      setting=None if model else "MistralMagics.model")
    from IPython.display import display

    from ..show.render import markdown

    display(markdown(heading(error), plain=f"Fixing {message(error)}, raised by this cell:\n\n"
                     f"{error.source}"), raw=True)
    request = chat_request(model or magics.model, messages(error), temperature=magics.temperature,
                           max_tokens=magics.max_tokens)
    answer = magics.session.ask(request, chat=None, view=StreamView(magics.shell, "markdown"),
                                stream=magics.stream, record_turn=False, kind="fix")
    code = first_code_block(answer.text) if answer.status == "ok" else None
    if code is not None:
        from .labcomm import next_cell

        next_cell(magics.shell, code, "fix", magics.session.cell_id)
        return None
    if answer.status == "ok":
        return "The answer has no code block, so no corrected cell was added."
    return None
