"""The tool loop: a cell's model calls notebook functions, step by step, until it answers.

``%%mistral --tools describe_column,plot_hist [--tool-choice C] [--max-steps N] [--approve]``

Each step is one call through the call path (`Session.call`): its budget reservation,
its ledger row, the response cache, streamed into the cell's one view. When the
model asks for tools, the calls run in the order given, in the kernel's thread
(`tools.functions.Toolbox.execute`; async tools are awaited on the background loop), each
shown as a collapsed block under the answer, and their results go back in the next
step. The loop ends when the model answers in text:

- ``--tool-choice auto|any|none|NAME`` is sent as the API takes it (a NAME as
  ``{"type": "function", "function": {"name": NAME}}``); a forced choice (``any`` or a
  NAME) holds for the first step only, so the model is not made to call tools again
  and again once it has their results.
- ``--max-steps N`` (default 5) bounds the calls to the model: step N is sent with
  ``tool_choice: "none"``, so it answers from the results it has, and the answer says
  so in a note. Every call made is thereby answered, and the history stays valid.
- ``--approve`` asks before each call (`approve_by_input`: ``input()``, a small prompt
  in a notebook); a refusal, or no input device to ask on, goes back to the model as
  the tool's result.

Tool-call ids that are not 9 letters and digits (as a self-hosted server may send)
are replaced by ids made from the call, so the messages keep the hosted API's rules.
The cell's turn holds the assistant's tool calls and the tool results before the
reply (`chat.Turn.exchange`), so the next cell can follow up, and undoing or
re-running the cell removes or replaces all of it. The footer sums the steps.

On a replay from the response cache, each step's stored answer is served (its tool
calls too); the tools run again locally, since they are the notebook's own code and
may draw plots, and the next step is served when they gave the same results.

A stored answer is data when this user did not write it (*foreign*: imported with
``%mistral cache import``, shipped and read through ``cache_path``, written on another
machine, or edited; `mistral_magic.store.provenance`): its tool calls name the
notebook's functions with arguments taken from a file. Each such call is shown in the
cell (name and arguments, through the safe render path) and asked about
(`approve_stored`, with or without ``--approve``) before it runs. A refusal, or a
front end with no input device (a headless run), runs nothing: the tool's result says
"Not run", and the next step goes on from there, sent or served as usual; when
replaying, where nothing is sent, a next step that is not stored ends the cell there
with a note (the turn is kept out of the chat's context) instead of a `ReplayMiss`.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import time
from typing import Any

from ..show.answer import Answer

DEFAULT_MAX_STEPS = 5
#: how much of a foreign stored call is shown before it may run (the prompt, the cell)
STORED_SIGNATURE = 1000
STORED_ARGUMENTS = 4000
WITHHELD = ("the stored answer goes on after tool calls that were not run, and replay sends "
            "nothing: run the cell in Jupyter and answer y to replay the rest")
CHOICES = ("auto", "any", "none")
_ID = re.compile(r"[a-zA-Z0-9]{9}")
_ID_CHARS = string.ascii_letters + string.digits


def tool_choice(value: str | None, names: list[str]) -> str | dict | None:
    """`--tool-choice` as the API takes it (None: not sent); a NAME must be one of `names`."""
    from IPython.core.error import UsageError

    if value is None or value in CHOICES:
        return value
    if value not in names:
        raise UsageError(f"--tool-choice takes auto, any, none or one of the tools "
                         f"({', '.join(names)}), not {value!r}")
    return {"type": "function", "function": {"name": value}}


def from_arguments(args, defaults: list[str], namespace: dict):
    """A cell's toolbox and tool_choice from its options (``(None, None)``: no tools).

    Bad combinations are a `UsageError`; names that are no functions a `ToolError`.
    """
    from IPython.core.error import UsageError

    from .functions import collect

    spec = args.tools
    if spec is None and not (args.json or args.schema is not None):
        # The default list serves the cells that answer in text; a --json cell keeps working.
        spec = ",".join(defaults)
    if not spec:
        if args.tool_choice or args.max_steps is not None or args.approve:
            raise UsageError("--tool-choice, --max-steps and --approve go with --tools NAMES")
        return None, None
    if args.json or args.schema is not None:
        raise UsageError("--tools answers in text; use --json or --schema in a cell without --tools")
    if args.max_steps == 0:
        raise UsageError("--max-steps must be 1 or more (each step is one call to the model)")
    toolbox = collect(spec, namespace)
    return toolbox, tool_choice(args.tool_choice, toolbox.names())


def approve_by_input(run) -> tuple[bool, str]:
    """Ask the user before a call runs; no input device means no (said in the result)."""
    return _ask(f"Run {run.signature()}? [y/N] ",
                "Not run: --approve asks before each call, and this front end has no input "
                "device to ask on (a headless run); run the cell in Jupyter, or leave out --approve.",
                f"Not run: the user refused this call to {run.name}.")


def approve_stored(run) -> tuple[bool, str]:
    """Ask before a call from a foreign stored answer runs; no input device means no."""
    return _ask(f"Run {run.signature(limit=STORED_SIGNATURE)}? It comes from stored answers "
                "this machine did not write. [y/N] ",
                f"Not run: this call to {run.name} comes from stored answers this machine did "
                "not write (imported or shipped), and this front end has no input device to "
                "approve it on (a headless run); run the cell in Jupyter and answer y.",
                f"Not run: the user refused this call to {run.name}, which came from stored "
                "answers this machine did not write.")


def _ask(question: str, headless: str, refused: str) -> tuple[bool, str]:
    from IPython.core.error import StdinNotImplementedError

    try:
        reply = input(question)
    except (StdinNotImplementedError, EOFError, OSError):
        return False, headless
    if reply.strip().lower() in ("y", "yes"):
        return True, "approved"
    return False, refused


def stored_call(run) -> str:
    """The note that shows a foreign stored call in the cell while it waits for a yes."""
    from ..show.render import fence

    shown = json.dumps(run.arguments, indent=2, ensure_ascii=False, default=str)
    if len(shown) > STORED_ARGUMENTS:
        shown = shown[:STORED_ARGUMENTS] + f"\n… [{len(shown) - STORED_ARGUMENTS:,} more characters]"
    return ("*A stored answer that this machine did not write (imported, or shipped with "
            "`cache_path`) asks to run a tool. It runs only if you answer y below:*\n\n"
            + fence(f"{run.name}\n{shown}", "json"))


def call_id(call: dict, step: int, index: int, taken: set[str]) -> str:
    """The call's id if the API would take it, else one made from the call (the same each run)."""
    given = call.get("id") or ""
    if _ID.fullmatch(given) and given not in taken:
        return given
    seed = f"{step}:{index}:{call['function'].get('name')}:{call['function'].get('arguments')}"
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    made = ""
    while len(made) < 9:
        number, digit = divmod(number, len(_ID_CHARS))
        made += _ID_CHARS[digit]
    return made if made not in taken else made[:8] + _ID_CHARS[len(taken) % len(_ID_CHARS)]


class ToolLoop:
    """One ``--tools`` cell: its steps, the tool runs between them, and its turn."""

    def __init__(self, session, request: dict, toolbox, *, view=None, chat=None, cell_id=None,
                 stream: bool = True, reuse="cell", max_steps: int = DEFAULT_MAX_STEPS,
                 approve=None, keep_thinking: bool = False):
        self.session = session
        self.request = request
        self.toolbox = toolbox
        self.view = view
        self.chat = chat
        self.cell_id = cell_id
        self.stream = stream
        self.reuse = reuse
        self.max_steps = max(1, int(max_steps))
        self.approve = approve
        self.keep_thinking = keep_thinking
        self.answers: list[Answer] = []
        self.runs: list = []
        self.exchange: list[dict] = []
        self.note = ""
        self.interrupted = False
        self.withheld = False  # a foreign stored call was not approved

    @classmethod
    def for_cell(cls, session, request: dict, toolbox, args, **options) -> ToolLoop:
        """The loop of a ``%%mistral --tools`` cell, from its parsed arguments."""
        return cls(session, request, toolbox, max_steps=args.max_steps or DEFAULT_MAX_STEPS,
                   approve=approve_by_input if args.approve else None,
                   keep_thinking=args.keep_thinking, **options)

    def step_request(self, step: int) -> dict:
        """The request of step `step`: the cell's, the exchange so far, the choice for it."""
        request = {**self.request, "messages": [*self.request["messages"], *self.exchange]}
        choice = request.get("tool_choice")
        if step == self.max_steps:
            request["tool_choice"] = "none"
        elif step > 1 and (choice == "any" or isinstance(choice, dict)):
            request["tool_choice"] = "auto"
        return request

    def run(self) -> Answer:
        """Step until the model answers; record the turn; render; raise after a failure."""
        from ..errors import BudgetExceeded, ReplayMiss

        session, failure = self.session, None
        started = time.perf_counter()
        try:
            for step in range(1, self.max_steps + 1):
                if step > 1 and self.view is not None:
                    self.view.thinking_before = "\n\n".join(a.thinking for a in self.answers if a.thinking)
                try:
                    answer, failure = self.send(self.step_request(step))
                except ReplayMiss:
                    if not self.withheld:
                        raise
                    self.note = WITHHELD
                    break
                self.answers.append(answer)
                if failure is not None or answer.status != "ok" or not answer.tool_calls:
                    break
                if step == self.max_steps:  # a server that called tools though told "none"
                    self.note = f"stopped at --max-steps {self.max_steps} with calls left unanswered"
                    answer.status, answer.error = "error", self.note
                    break
                self.run_tools(step, answer)
                if self.interrupted:
                    break
        except BudgetExceeded as exc:
            if not self.answers:
                raise
            self.note = f"step {len(self.answers) + 1} was refused: {exc}"
            self.finish(time.perf_counter() - started, status="error", error=str(exc))
            raise
        if len(self.answers) == self.max_steps and self.answers[-1].status == "ok" and not self.note:
            self.note = (f"step {self.max_steps} of --max-steps {self.max_steps}: the model was asked "
                         "to answer with the tool results it had, without calling more tools")
        stopped = ("error", self.note) if self.note == WITHHELD else (None, None)
        total = self.finish(time.perf_counter() - started, *stopped)
        session._raise(failure, total)
        if self.interrupted:  # during the tools: no reply yet, so the cell keeps no turn
            from ..errors import Interrupted

            ran = sum(run.status != "skipped" for run in self.runs)
            kept = f"; nothing was kept in chat {self.chat!r}" if self.chat is not None else ""
            raise Interrupted(f"Stopped during the tool calls ({ran} of {len(self.runs)} ran)"
                              f"{kept}; run the cell again to ask anew", partial=total)
        from ..calls.path import stop_if_interrupted

        stop_if_interrupted(total, self.chat)
        return total

    def send(self, request: dict) -> tuple[Answer, BaseException | None]:
        """One step's call through the call path (a conversation cell sends its own way)."""
        return self.session.call(request, chat=self.chat, view=self.view, stream=self.stream,
                                 reuse=self.reuse)

    def run_tools(self, step: int, answer: Answer) -> None:
        """Run the step's calls in order; each answered in the exchange, whatever happens."""
        from ..chat import thinking_chunk

        taken: set[str] = set()
        calls = []
        for index, call in enumerate(answer.tool_calls):
            call = {**call, "function": dict(call["function"])}
            call["id"] = call_id(call, step, index, taken)
            taken.add(call["id"])
            calls.append(call)
        content: Any = ""
        if self.keep_thinking and answer.thinking:
            content = [thinking_chunk(answer.thinking)]
        self.exchange.append({"role": "assistant", "content": content, "tool_calls": calls})
        approve = self.approver(answer)
        for call in calls:
            run = None
            if not self.interrupted:
                self._show(f"*…running {call['function'].get('name')}…*")
                try:
                    run = self.toolbox.execute(call, approve=approve,
                                               run_async=self.session.loop.run)
                except KeyboardInterrupt:
                    self.interrupted = True
            if run is None:
                from .functions import ToolRun

                run = ToolRun(call_id=call["id"], name=call["function"].get("name") or "",
                              arguments=call["function"].get("arguments") or "")
                run.failed("Not run: the cell was interrupted.", "skipped")
            self.runs.append(run)
            self.exchange.append({"role": "tool", "name": run.name, "tool_call_id": call["id"],
                                  "content": run.content})
        self._show("*…sending the tool results…*" if not self.interrupted else "")

    def approver(self, answer: Answer):
        """Who approves a step's calls: a foreign stored step's are shown and asked about."""
        if not answer.foreign:
            return self.approve

        def approve(run) -> tuple[bool, str]:
            self._show(stored_call(run))  # seen in the cell before anything runs
            approved, note = approve_stored(run)
            self.withheld = self.withheld or not approved
            return approved, note

        return approve

    def _show(self, note: str) -> None:
        if self.view is not None:
            from ..show import render

            html, plain = render.tool_blocks(self.runs)
            self.view.show_tools(html, plain, note)

    def finish(self, elapsed: float, status: str | None = None, error: str | None = None) -> Answer:
        """The cell's one answer for all its steps: recorded as the turn, rendered."""
        session, last = self.session, self.answers[-1]
        total = last if len(self.answers) == 1 and not self.runs else combined(self.answers, elapsed)
        total.tool_runs, total.exchange = list(self.runs), list(self.exchange)
        if self.interrupted:
            total.status = "interrupted"
        if status is not None:
            total.status, total.error = status, error
        session.record_turn(total, self.request, self.chat, self.cell_id,
                            keep_thinking=self.keep_thinking)
        session.last = total
        if self.view is not None:
            self.view.thinking_before = ""
            mark = (total.mark if total.text else "") + (f"\n\n*⚠ {self.note}*" if self.note else "")
            if total.status == "error" and not total.text and not self.runs:
                self.view.clear()
            else:
                self.view.finish(total.text + mark, session.footer(total), session.provenance(total),
                                 thinking=total.thinking, thinking_tokens=total.thinking_tokens)
        return total


def combined(answers: list[Answer], elapsed: float) -> Answer:
    """Several steps as one answer: the last one's text, every step's usage, cost and reasoning."""
    last = answers[-1]
    costs = [a.cost for a in answers]
    thinking = [a.thinking for a in answers if a.thinking]
    return Answer(
        text=last.text, model=last.model, chat=last.chat, status=last.status, request=last.request,
        prompt_tokens=sum(a.prompt_tokens or 0 for a in answers),
        completion_tokens=sum(a.completion_tokens or 0 for a in answers),
        cost=None if any(c is None for c in costs) else sum(costs),
        latency_s=elapsed, ttft_s=answers[0].ttft_s, finish_reason=last.finish_reason,
        backend=last.backend, error=last.error, budget_capped=last.budget_capped,
        # Steps and tool runs share the time: no one speed describes them.
        streamed=False, cached=all(a.cached for a in answers),
        saved=sum(a.saved or 0.0 for a in answers) if all(a.cached for a in answers) else None,
        thinking="\n\n".join(thinking),
        thinking_tokens=sum(a.thinking_tokens or 0 for a in answers) or None,
        final_thinking=last.thinking, steps=len(answers),
        cached_tokens=_summed(a.cached_tokens for a in answers),
        cached_saved=_summed(a.cached_saved for a in answers),
    )


def _summed(values):
    """The sum of the values the steps reported (None when none did)."""
    found = [v for v in values if v is not None]
    return sum(found) if found else None
