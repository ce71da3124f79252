"""Notebook functions as tools: schemas from signatures, the loop, what it shows and keeps.

Every cell runs against the real offline server, which checks tool messages as the
hosted API does (every call answered, ids of 9 letters and digits): a follow-up cell
that is answered proves the history it sent was valid.
"""

from __future__ import annotations

import builtins
import re
from html.parser import HTMLParser
from typing import Literal

import pytest
from conftest import run
from IPython.core.error import UsageError
from pydantic import BaseModel, Field

import mistral_magic
from mistral_magic.errors import ToolError
from mistral_magic.tools.functions import Tool, Toolbox, collect

SETUP = '''
import pandas as pd
sales = pd.DataFrame({"price": [3.5, 4.0, 12.0, 7.25, 5.5, 30.0], "qty": [1, 4, 2, 8, 3, 1]})
calls = []

def describe_column(column: str) -> dict:
    """Summary statistics of one column of the sales table.

    Args:
        column: the column's name.
    """
    calls.append(("describe_column", column))
    return sales[column].describe().round(3).to_dict()

def plot_hist(column: str, bins: int = 10) -> str:
    """Plot a histogram of one column of the sales table."""
    calls.append(("plot_hist", column, bins))
    return f"histogram of {column} drawn with {bins} bins"
'''
ASK = "Describe the price column, then plot its histogram with 20 bins."
ID = re.compile(r"[a-zA-Z0-9]{9}")


def setup(ip) -> None:
    run(ip, SETUP)


def final(ip) -> dict:
    return [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]


def sent_messages(session) -> list[dict]:
    return session.last.request["messages"]


def check_sequence(messages: list[dict]) -> None:
    """The hosted API's rules: each assistant tool call answered by one tool message after it."""
    open_ids: list[str] = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls"):
            assert not open_ids
            open_ids = [call["id"] for call in message["tool_calls"]]
            assert all(ID.fullmatch(i) for i in open_ids) and len(set(open_ids)) == len(open_ids)
        elif message["role"] == "tool":
            assert message["tool_call_id"] == open_ids.pop(0)
        else:
            assert not open_ids, "a tool call left unanswered"
    assert not open_ids


# --- schemas from signatures ---------------------------------------------------------------------


class Window(BaseModel):
    """A range of rows."""

    start: int = Field(ge=0)
    stop: int


def test_schema_comes_from_hints_defaults_and_the_docstring():
    def summarise(column: str, percentiles: tuple[float, ...] = (0.25, 0.75), how: Literal["mean", "max"] = "mean",
                  window: Window | None = None, *, scale: float = 1.0) -> str:
        """Summarise one column.

        Longer text is part of the description.

        Args:
            column: the column's name.
            percentiles: which percentiles to show.
            window: the rows to look at.
        """

    tool = Tool.from_function(summarise)
    definition = tool.definition()["function"]
    assert definition["name"] == "summarise"
    assert definition["description"] == "Summarise one column.\n\nLonger text is part of the description."
    schema = definition["parameters"]
    props = schema["properties"]
    assert schema["required"] == ["column"] and schema["additionalProperties"] is False
    assert props["column"] == {"type": "string", "description": "the column's name."}
    assert props["percentiles"]["items"] == {"type": "number"} and props["percentiles"]["type"] == "array"
    assert props["percentiles"]["default"] == [0.25, 0.75]
    assert props["how"]["enum"] == ["mean", "max"] and props["how"]["default"] == "mean"
    assert props["scale"] == {"type": "number", "default": 1.0}
    assert "title" not in props["column"]
    # The pydantic model's own schema, its constraint included, is referenced from the field.
    window = schema["$defs"]["Window"]
    assert window["properties"]["start"]["minimum"] == 0 and window["required"] == ["start", "stop"]
    assert props["window"]["description"] == "the rows to look at."


def test_numpy_and_sphinx_docstrings_describe_parameters_too():
    def numpy_style(n: int):
        """Count.

        Parameters
        ----------
        n : int
            how many.
        """

    def sphinx_style(n: int):
        """Count.

        :param n: how many.
        """

    for function in (numpy_style, sphinx_style):
        props = Tool.from_function(function).parameters["properties"]
        assert props["n"] == {"type": "integer", "description": "how many."}


def test_arguments_are_validated_and_passed_by_name_or_position():
    def f(a: int, /, b: Window, c: str = "x"):
        return a, b, c

    tool = Tool.from_function(f)
    args, kwargs = tool.validate({"a": "3", "b": {"start": 1, "stop": 2}})
    assert args == [3] and kwargs["b"] == Window(start=1, stop=2) and kwargs["c"] == "x"
    run = Toolbox([tool]).execute({"id": "abcdefghi", "function": {"name": "f", "arguments": '{"a": 1}'}})
    assert run.status == "error" and "b: Field required" in run.content
    run = Toolbox([tool]).execute({"id": "abcdefghi", "function": {"name": "f", "arguments": "{oops"}})
    assert run.status == "error" and "not JSON" in run.content
    run = Toolbox([tool]).execute({"id": "abcdefghi", "function": {"name": "g", "arguments": "{}"}})
    assert run.status == "unknown" and "The tools are: f" in run.content


def test_tools_that_a_model_cannot_call_are_refused_in_one_line():
    def star(*values: int):
        pass

    with pytest.raises(ToolError, match=r"\*values"):
        Tool.from_function(star)
    with pytest.raises(ToolError, match="no name a model can call"):
        Tool.from_function(lambda x: x)
    namespace = {"f": lambda: 1, "g": 3}
    with pytest.raises(ToolError, match="no 'h' in the notebook"):
        collect("h", namespace)
    with pytest.raises(ToolError, match="holds a int"):
        collect("g", namespace)

    def twice():
        pass

    with pytest.raises(ToolError, match="two tools are named twice"):
        collect("both", {"both": [twice, twice]})
    assert collect("named", {"named": {"first": twice, "second": twice}}).names() == ["first", "second"]


# --- the loop in a cell ----------------------------------------------------------------------------


def test_a_cell_calls_the_tools_in_order_and_shows_each_call(ip):
    setup(ip)
    run(ip, f"%%mistral --tools describe_column,plot_hist -o answer\n{ASK}", cell_id="c1")
    session = mistral_magic.session()
    calls = ip.user_ns["calls"]
    assert sorted(calls) == [("describe_column", "price"), ("plot_hist", "price", 20)]
    last = session.last
    assert last.steps == 2 and [r.name for r in last.tool_runs] == [c[0] for c in calls]
    assert ip.user_ns["answer"] == last.reply and "histogram of price drawn with 20 bins" in last.text
    shown = final(ip)
    html = shown["data"]["text/html"]
    assert html.count('<details class="mistral-tool">') == 2 and " open" not in html
    assert "<summary>⚙ describe_column(column='price')" in html
    assert "&quot;mean&quot;" in html or '"mean"' in html  # the result's preview
    assert "2 steps, 2 tool calls" in shown["data"]["text/plain"]
    meta = shown["metadata"]["mistral_magic"]
    assert meta["steps"] == 2 and {c["name"] for c in meta["tool_calls"]} == {"describe_column", "plot_hist"}
    # Each step is a ledger row of the cell; the footer sums them.
    rows = session.ledger.records
    assert len(rows) == 2 and {r.chat for r in rows} == {"default"}
    assert meta["cost_usd"] == pytest.approx(sum(r.cost for r in rows))
    assert last.prompt_tokens == sum(r.prompt_tokens for r in rows)
    # The second step sent the assistant's calls and their results.
    check_sequence(sent_messages(session))
    assert [m["role"] for m in sent_messages(session)] == ["user", "assistant", "tool", "tool"]


def test_history_is_valid_after_a_follow_up_and_rerun_replaces_the_exchange(ip):
    setup(ip)
    run(ip, f"%%mistral --tools describe_column,plot_hist\n{ASK}", cell_id="c1")
    run(ip, "%%mistral --tools describe_column,plot_hist\nNow plot the qty column.", cell_id="c2")
    session = mistral_magic.session()
    assert ("plot_hist", "qty", 10) in ip.user_ns["calls"][2:]
    sent = sent_messages(session)
    check_sequence(sent)
    roles = [m["role"] for m in sent]
    assert roles[:6] == ["user", "assistant", "tool", "tool", "assistant", "user"]
    assert roles[6] == "assistant" and set(roles[7:]) == {"tool"}
    chat = session.chats.get("default")
    check_sequence(chat.context())
    # Re-running the first cell replaces its whole exchange, in place.
    run(ip, f"%%mistral --tools describe_column,plot_hist\n{ASK}", cell_id="c1")
    assert len(chat) == 2
    context = chat.context()
    check_sequence(context)
    assert [m["role"] for m in context].count("tool") == len(ip.user_ns["calls"]) - 2
    # Undo removes the last cell's calls and results with it; a plain cell still follows up.
    run(ip, "%mistral undo")
    assert [m["role"] for m in chat.context()] == ["user", "assistant", "tool", "tool", "assistant"]
    run(ip, "%%mistral\nThanks, what else should I look at?", cell_id="c3")
    check_sequence(sent_messages(session))


def test_tool_errors_and_invalid_arguments_go_back_to_the_model(ip):
    setup(ip)
    run(ip, '''
from typing import Annotated
from pydantic import AfterValidator

def small(n: int) -> int:
    if n > 12:
        raise ValueError("at most 12 bins")
    return n

def plot_hist(column: str, bins: Annotated[int, AfterValidator(small)] = 10) -> str:
    """Plot a histogram of one column of the sales table."""
    return "drawn"

def describe_column(column: str) -> dict:
    """Summary statistics of one column of the sales table."""
    raise KeyError(column)
''')
    run(ip, f"%%mistral --tools describe_column,plot_hist\n{ASK}", cell_id="c1")
    session = mistral_magic.session()
    runs = {r.name: r for r in session.last.tool_runs}
    assert runs["plot_hist"].status == "error" and "at most 12 bins" in runs["plot_hist"].content
    assert runs["describe_column"].content == "describe_column raised KeyError: 'price'"
    results = [m["content"] for m in sent_messages(session) if m["role"] == "tool"]
    assert sorted(results) == sorted(r.content for r in runs.values())
    html = final(ip)["data"]["text/html"]
    assert html.count('<details class="mistral-tool error">') == 2 and "Traceback" not in html
    assert session.last.status == "ok"


def test_a_result_that_cannot_become_text_is_the_tools_error_and_the_cell_goes_on(ip):
    setup(ip)
    run(ip, '''
class Unprintable:
    def __str__(self):
        raise RuntimeError("no text for you")

    __repr__ = __str__

class Silent(Exception):
    def __str__(self):
        raise RuntimeError("no message either")

def describe_column(column: str) -> dict:
    """Summary statistics of one column of the sales table."""
    return {"mean": Unprintable()}

def plot_hist(column: str, bins: int = 10):
    """Plot a histogram of one column of the sales table."""
    raise Silent()
''')
    run(ip, f"%%mistral --tools describe_column,plot_hist\n{ASK}", cell_id="c1")
    session = mistral_magic.session()
    runs = {r.name: r for r in session.last.tool_runs}
    assert runs["describe_column"].status == "error" and runs["describe_column"].value is None
    assert runs["describe_column"].content.startswith(
        "describe_column returned a dict that cannot be turned into text "
        "(RuntimeError: no text for you)")
    assert runs["plot_hist"].content == "plot_hist raised Silent: (its message cannot be shown)"
    results = [m["content"] for m in sent_messages(session) if m["role"] == "tool"]
    assert sorted(results) == sorted(r.content for r in runs.values())
    html = final(ip)["data"]["text/html"]
    assert html.count('<details class="mistral-tool error">') == 2 and "no text for you" in html
    assert session.last.status == "ok" and "Traceback" not in html


def test_approve_asks_before_each_call(ip, monkeypatch):
    setup(ip)
    asked = []
    replies = iter(["y", "n"])
    monkeypatch.setattr(builtins, "input", lambda prompt: asked.append(prompt) or next(replies))
    run(ip, f"%%mistral --tools describe_column,plot_hist --approve\n{ASK}", cell_id="c1")
    runs = mistral_magic.session().last.tool_runs
    assert len(asked) == 2 and asked[0].startswith(f"Run {runs[0].signature()}?")
    assert [r.status for r in runs] == ["ok", "refused"]
    assert runs[1].content == f"Not run: the user refused this call to {runs[1].name}."
    assert len(ip.user_ns["calls"]) == 1
    check_sequence(sent_messages(mistral_magic.session()))


def test_approve_refuses_with_a_note_where_nothing_can_ask(ip, monkeypatch):
    setup(ip)

    def no_stdin(prompt):
        raise OSError("reading from stdin while output is captured")

    monkeypatch.setattr(builtins, "input", no_stdin)
    run(ip, f"%%mistral --tools describe_column,plot_hist --approve\n{ASK}", cell_id="c1")
    runs = mistral_magic.session().last.tool_runs
    assert {r.status for r in runs} == {"refused"} and ip.user_ns["calls"] == []
    assert "no input device" in runs[0].content
    assert "no input device" in final(ip)["data"]["text/html"]


def test_max_steps_and_tool_choice_are_sent_and_the_limit_is_said(ip):
    setup(ip)
    run(ip, f"%%mistral --tools describe_column,plot_hist --max-steps 1\n{ASK}", cell_id="c1")
    session = mistral_magic.session()
    assert session.last.request["tool_choice"] == "none" and not session.last.tool_runs
    assert "--max-steps 1" in final(ip)["data"]["text/plain"] and ip.user_ns["calls"] == []
    run(ip, f"%%mistral --tools describe_column,plot_hist --tool-choice plot_hist\n{ASK}", cell_id="c2")
    first = session.ledger.records  # the forced choice holds for the first step only
    assert [c[0] for c in ip.user_ns["calls"]] == ["plot_hist"] and len(first) == 3
    assert session.last.request["tool_choice"] == "auto"
    run(ip, "%%mistral --tools describe_column --tool-choice any --dry-run -o body\nDescribe price.")
    body = ip.user_ns["body"]
    assert [t["function"]["name"] for t in body["tools"]] == ["describe_column"]
    assert body["tool_choice"] == "any" and "describe_column" not in str(ip.user_ns["calls"])
    with pytest.raises(UsageError, match="--tool-choice takes"):
        ip.run_cell_magic("mistral", "--tools describe_column --tool-choice plot", "x")
    with pytest.raises(UsageError, match="go with --tools"):
        ip.run_cell_magic("mistral", "--approve", "x")
    with pytest.raises(UsageError, match="--json or --schema"):
        ip.run_cell_magic("mistral", "--tools describe_column --json", "x")


def test_a_default_list_and_a_dict_variable_name_the_tools(ip):
    setup(ip)
    run(ip, "toolbox = {'stats': describe_column}")
    run(ip, "%config MistralMagics.tools = ['toolbox']")
    run(ip, "%%mistral\nGive me the stats of the qty column.", cell_id="c1")
    runs = mistral_magic.session().last.tool_runs
    assert [r.name for r in runs] == ["stats"] and ip.user_ns["calls"] == [("describe_column", "qty")]
    run(ip, "%%mistral --tools plot_hist\nPlot price.", cell_id="c2")
    assert [r.name for r in mistral_magic.session().last.tool_runs] == ["plot_hist"]
    run(ip, '%%mistral --json -o value\nGive {"n": 1}.', cell_id="c3")  # a --json cell goes without
    assert isinstance(ip.user_ns["value"], dict) and "tools" not in mistral_magic.session().last.request


def test_an_async_tool_is_awaited_and_reasoning_kept_with_the_calls(ip):
    setup(ip)
    run(ip, '''
import asyncio

async def describe_column(column: str) -> str:
    """Summary statistics of one column of the sales table."""
    await asyncio.sleep(0.01)
    calls.append(("async", column))
    return f"{column}: mean {sales[column].mean():.2f}"
''')
    run(ip, "%%mistral --tools describe_column --think high --keep-thinking\nDescribe the price column.",
        cell_id="c1")
    session = mistral_magic.session()
    assert ip.user_ns["calls"] == [("async", "price")]
    assert session.last.tool_runs[0].content == "price: mean 10.38" and session.last.thinking
    step = next(m for m in session.chats.get("default").context() if m.get("tool_calls"))
    assert step["content"][0]["type"] == "thinking"  # the step's reasoning went back with its calls
    run(ip, "%%mistral --tools describe_column\nAnd the qty column?", cell_id="c2")
    check_sequence(sent_messages(session))


def test_a_budget_is_checked_before_every_step(ip):
    setup(ip)
    ip.run_line_magic("config", "MistralMagics.cache = 'off'")
    ip.run_line_magic("config", "MistralMagics.prices = {'mistral-small-latest': {'input': 100, 'output': 300}}")
    run(ip, f"%%mistral --tools describe_column,plot_hist\n{ASK}", cell_id="c1")
    session = mistral_magic.session()
    first_step = session.ledger.records[0].cost
    spent = session.ledger.spent
    # Enough for the first step again, not for the second (its prompt carries the results).
    limit = spent + first_step * 1.02
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {limit!r}")
    result = run(ip, f"%%mistral -c other --tools describe_column,plot_hist\n{ASK}", cell_id="c2", ok=False)
    assert not result.success and "budget" in str(result.error_in_exec).lower()
    rows = session.ledger.records
    assert len(rows) == 3 and session.ledger.spent <= limit
    assert len(ip.user_ns["calls"]) == 4  # the first step's calls ran, then the budget said no
    turn = session.chats.get("other").turns[-1]
    assert turn.cell_id == "c2" and turn.status == "error" and not turn.in_context
    assert session.chats.get("other").context() == []


def test_a_replayed_tool_cell_is_served_step_by_step_and_runs_its_tools(ip):
    setup(ip)
    run(ip, f"%%mistral --tools describe_column,plot_hist\n{ASK}", cell_id="c1")
    session = mistral_magic.session()
    text = session.last.text
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    run(ip, f"%%mistral --tools describe_column,plot_hist\n{ASK}", cell_id="c1")
    rows = session.ledger.records
    assert [r.cached for r in rows] == [False, False, True, True]
    assert session.last.text == text and session.last.cost == 0
    assert len(ip.user_ns["calls"]) == 4  # the tools ran again: they are the notebook's code


def test_the_chat_panel_shows_the_same_blocks(ip):
    from mistral_magic import widgets

    setup(ip)
    run(ip, f"%%mistral -c pair --tools describe_column,plot_hist\n{ASK}", cell_id="c1")
    panel = widgets.ChatPanel(mistral_magic.session(), "pair")
    shown = panel.history.outputs[-1]["data"]
    assert shown["text/html"].count('<details class="mistral-tool">') == 2
    assert "⚙ describe_column(column='price')" in shown["text/plain"]
    assert [r["role"] for r in mistral_magic.session().chats.get("pair").rows()] == [
        "user", "tool", "tool", "assistant"]
    turn = panel.send("Now plot the qty column.").result(30)  # the panel follows up on it
    assert turn.status == "ok"
    sent = mistral_magic.session().chats.get("pair").context()
    check_sequence(sent)


def test_an_interrupt_in_a_tool_skips_the_rest_and_keeps_the_history_valid(ip):
    setup(ip)
    run(ip, '''
def describe_column(column: str) -> dict:
    """Summary statistics of one column of the sales table."""
    raise KeyboardInterrupt
''')
    result = run(ip, f"%%mistral --tools describe_column,plot_hist\n{ASK}", cell_id="c1",
                 ok=False)
    # The cell ends as interrupted; with no reply yet, it keeps no turn, and says so.
    stopped = result.error_in_exec
    assert type(stopped).__name__ == "Interrupted"
    ran = sum(r.status != "skipped" for r in stopped.partial.tool_runs)
    assert str(stopped).startswith(
        f"Stopped during the tool calls ({ran} of {len(stopped.partial.tool_runs)} ran)")
    assert "nothing was kept in chat 'default'" in str(stopped)
    session = mistral_magic.session()
    assert session.chats.get("default").turns == []
    statuses = {r.name: r.status for r in stopped.partial.tool_runs}
    assert statuses["describe_column"] == "skipped" and len(session.ledger.records) == 1
    assert session.budget.reserved == 0
    run(ip, "%%mistral --tools describe_column,plot_hist\nNow plot the qty column.", cell_id="c2", ok=False)
    check_sequence(session.chats.get("default").context())


def test_names_arguments_results_and_reasoning_are_data_never_markup():
    from xss_corpus import CORPUS, problems

    from mistral_magic.show import render
    from mistral_magic.tools.functions import ToolRun

    hostile = ToolRun(call_id="abcdefghi", name="<img src=x onerror=alert(1)>",
                      arguments={"<b onclick=x()>": CORPUS}, content=CORPUS, value=CORPUS)
    failed = ToolRun(call_id="bcdefghij", name="f", arguments=CORPUS).failed(CORPUS)
    html, plain = render.tool_blocks([hostile, failed])
    markup = render.block("answer", "", render.reasoning(CORPUS, 12), html)
    assert not problems(markup), problems(markup)
    assert markup.count("<details") == 3 and "<img" not in markup
    assert problems("<details class=\"mistral-tool\">x</details>") == []
    assert problems("<details open>x</details>") == ["<details> not made by render"]


class Shown(HTMLParser):
    """What a browser shows of each `<summary>`: its text, and any element inside it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.summaries: list[str] = []
        self.inside: list[str] = []  # tags found inside a summary
        self._open = False

    def handle_starttag(self, tag, attrs):
        if tag == "summary":
            self._open = True
            self.summaries.append("")
        elif self._open:
            self.inside.append(tag)

    def handle_endtag(self, tag):
        if tag == "summary":
            self._open = False

    def handle_data(self, data):
        if self._open:
            self.summaries[-1] += data


LINK = '<a href=https://evil.example/>click me</a>'
HOSTILE = f'{LINK} <b>bold</b> <img src=x onerror=alert(1)> &amp; 1 < 2'


def test_a_tool_calls_title_shows_hostile_text_as_text_not_as_markup():
    from mistral_magic.show import render
    from mistral_magic.tools.functions import ToolRun

    ran = ToolRun(call_id="abcdefghi", name="lookup", arguments={"query": HOSTILE}, content="ok")
    # A name no tool has, sent by the model: shown as it came.
    unknown = ToolRun(call_id="bcdefghij", name=HOSTILE, arguments={"query": "x"}).failed(
        "no such tool", "unknown")
    refused = ToolRun(call_id="cdefghijk", name="lookup", arguments={"query": "x"}).failed(HOSTILE)
    html, plain = render.tool_blocks([ran, unknown, refused])
    shown = Shown()
    shown.feed(html)
    assert shown.inside == []  # no link, bold or picture in a title
    # Every character is still there.
    assert shown.summaries == [ran.summary(), unknown.summary(), refused.summary()]
    assert all(LINK in summary for summary in shown.summaries)
    assert plain.splitlines()[0].startswith(ran.summary())


def test_a_model_chosen_argument_is_shown_whole_in_the_cells_tool_block(ip):
    setup(ip)
    run(ip, f'%%mistral --tools describe_column\nDescribe the column "{LINK}".', cell_id="c1")
    (ran,) = mistral_magic.session().last.tool_runs
    assert ran.arguments == {"column": LINK}  # the model's choice, quoted from the prompt
    shown = Shown()
    shown.feed(final(ip)["data"]["text/html"])
    assert shown.inside == [] and shown.summaries[0] == ran.summary() and LINK in ran.summary()
