"""`%%mistral --fim`: Codestral fills the `<FILL>` in a cell of code; the whole code becomes the next cell.

    %%mistral --fim
    def mean(values):
        <FILL>

    print(mean([1, 2, 3]))

The code before the marker goes as the prompt and the code after it as the suffix of
Codestral's fill-in-the-middle (``fim.stream`` / ``fim.complete``), with
``codestral-latest`` unless ``-m`` names another model. The fill streams into the
cell's output as code; then the completed code (before + fill + after) is put in the
next cell, and ``-o VAR`` receives it too. The code is sent as written: ``{braces}``
are never interpolated. The call takes the one call path (`calls`): the budget
reserves, caps or refuses it, the ledger records it (kind "fim"), and the footer shows
its tokens and cost.

``-m``, ``-t``, ``--max-tokens``, ``--seed``, ``-o`` and ``--no-stream`` apply; the
chat options (``-c``, ``-s``, ``--new``, ``--json``, ``--schema``, ``--format``,
``--dry-run``) do not, and are refused in one line, as is a cell without exactly one
marker.
"""

from __future__ import annotations

from IPython.core.error import UsageError

MARKER = "<FILL>"
DEFAULT_MODEL = "codestral-latest"
# [PREFIX], [SUFFIX] and BOS around the code, as the offline server counts them.
CONTROL_TOKENS = 3
CHAT_OPTIONS = (("chat", "-c"), ("system", "-s"), ("new", "--new"), ("json", "--json"),
                ("schema", "--schema"), ("many", "--many"), ("dry_run", "--dry-run"))


def split(cell: str) -> tuple[str, str]:
    """The code before and after the one `<FILL>` marker (UsageError unless there is exactly one)."""
    count = cell.count(MARKER)
    if count != 1:
        said = "no <FILL> marker" if count == 0 else f"{count} <FILL> markers"
        raise UsageError(f"%%mistral --fim fills one gap: put one {MARKER} where the code should go "
                         f"(this cell has {said})")
    before, after = cell.split(MARKER)
    return before, after


def refuse_chat_options(args) -> None:
    """A UsageError naming the first chat option given with --fim."""
    given = [flag for name, flag in CHAT_OPTIONS if getattr(args, name, None)]
    if args.format != "markdown":
        given.append("--format")
    if given:
        raise UsageError(f"--fim fills code and takes -m, -t, --max-tokens, --seed, -o and "
                         f"--no-stream; {given[0]} is for chat cells")


def request(model: str, before: str, after: str, *, temperature=None, max_tokens=None,
            seed=None) -> dict:
    """A FIM request body; options left as None are not sent."""
    body = {"model": model, "prompt": before, "suffix": after}
    optional = {"temperature": temperature, "max_tokens": max_tokens, "random_seed": seed}
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def prompt_tokens(before: str, after: str) -> int:
    """What the prompt counts: the code on both sides and the FIM control tokens."""
    from ..money.tokens import count_text

    return count_text(before) + count_text(after) + CONTROL_TOKENS


def run(magics, args, cell: str) -> None:
    """Fill the cell's marker through the call path and put the completed code in the next cell."""
    from ..show.display import StreamView

    refuse_chat_options(args)
    magics.session.capabilities.check(args.model or DEFAULT_MODEL)
    before, after = split(cell)
    body = request(
        args.model or DEFAULT_MODEL, before, after,
        temperature=args.temperature if args.temperature is not None else magics.temperature,
        max_tokens=args.max_tokens if args.max_tokens is not None else magics.max_tokens,
        seed=args.seed,
    )
    answer = magics.session.ask(
        body, chat=None, view=StreamView(magics.shell, "code"),
        stream=magics.stream and not args.no_stream, record_turn=False, kind="fim",
        endpoint="fim", prompt_tokens=prompt_tokens(before, after),
    )
    if answer.status != "ok":  # interrupted: the partial fill is shown, not made a cell
        return
    code = before + answer.text + after
    from .labcomm import next_cell

    next_cell(magics.shell, code, "fim", magics.session.cell_id)
    if args.output:
        magics.shell.user_ns[args.output] = code
