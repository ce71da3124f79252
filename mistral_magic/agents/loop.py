"""A conversation cell's steps: built-in tools on Mistral's side, notebook functions in the kernel.

`ResearchLoop` is the tool loop (`tools.loop.ToolLoop`: steps, ``--max-steps``,
``--approve``, foreign stored calls shown and approved, interrupts during the tools) whose
steps are conversation calls (`call.converse`). The first step continues the chat's last
turn's conversation when it fits (`threads`); each later step appends the tool results to
the conversation the step before it made.

The cell's one answer (`finish`): the last step's text with ``⁽n⁾`` where each source was
cited, the numbered sources under it (a title links only to an http(s) address), each
built-in tool run and notebook function call as a collapsed block (a code interpreter's
code and output, said to run on Mistral's servers), the pictures the tools made, and the
footer (tokens, ``2 searches``, the cost, unknown for tools without a price). The turn
keeps the conversation it ended in, so the next cell continues it.
"""

from __future__ import annotations

from ..show.answer import Answer
from ..show.sources import Research, show_pictures
from ..tools.loop import ToolLoop, combined
from .call import converse


class ResearchLoop(ToolLoop):
    """One conversation cell (see the module's doc)."""

    def __init__(self, session, request: dict, toolbox, *, candidate: dict | None = None, **options):
        super().__init__(session, request, toolbox, **options)
        self.candidate = candidate

    def send(self, request: dict):
        earlier = self.answers[-1].research if self.answers else None
        candidate = earlier.link if earlier is not None else self.candidate
        return converse(self.session, request, candidate=candidate, chat=self.chat, view=self.view,
                        stream=self.stream, reuse=self.reuse, on_tool=self._started)

    def _started(self, call) -> None:
        """A built-in tool started: show its block (and the ones before it) while it runs."""
        if self.view is None:
            return
        html, plain = self._blocks(Research.merged([*self._researches(), call.research]))
        self.view.show_tools(html, plain, f"*…{call.research.executions[-1].name} is running on "
                                          "Mistral's servers…*")

    def _researches(self) -> list[Research]:
        return [a.research for a in self.answers if a.research is not None]

    def _blocks(self, research: Research | None) -> tuple[str, str]:
        from ..show import render

        ours, ours_plain = research.blocks() if research is not None else ("", "")
        theirs, theirs_plain = render.tool_blocks(self.runs)
        return ours + theirs, "\n".join(line for line in (ours_plain, theirs_plain) if line)

    def finish(self, elapsed: float, status: str | None = None, error: str | None = None) -> Answer:
        session, last = self.session, self.answers[-1]
        total = last if len(self.answers) == 1 and not self.runs else combined(self.answers, elapsed)
        researches = self._researches()
        total.research = Research.merged(researches) if researches else None
        total.tool_runs, total.exchange = list(self.runs), list(self.exchange)
        if self.interrupted:
            total.status = "interrupted"
        if status is not None:
            total.status, total.error = status, error
        turn = session.record_turn(total, self.request, self.chat, self.cell_id)
        link = total.research.link if total.research is not None and total.status == "ok" else None
        if turn is not None:
            turn.conversation = link
            session.threads.remember(self.chat, link)
        session.last = total
        if self.view is not None:
            self._render(total)
        return total

    def _render(self, total: Answer) -> None:
        view, research = self.view, total.research
        view.thinking_before = ""
        mark = (total.mark if total.text else "") + (f"\n\n*⚠ {self.note}*" if self.note else "")
        if total.status == "error" and not total.text and not self.runs and research is None:
            view.clear()
            return
        view.tools = self._blocks(research)
        text = research.marked(total.text) if research is not None else total.text
        session = self.session
        view.finish(text + mark, session.footer(total), session.provenance(total),
                    thinking=total.thinking, thinking_tokens=total.thinking_tokens)
        show_pictures(research)
