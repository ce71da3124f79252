"""Widgets driven from Python, as ipywidgets' own tests do: real offline server, real SDK.

The shell of the `ip` fixture has no kernel, so views are built with `force=True`
(comm falls back to a DummyComm); the degradation tests use that same shell
without `force`. One test runs a notebook in a real kernel to check that updates
made on the background loop's thread reach the front end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from conftest import run

import mistral_magic
from mistral_magic import widgets
from mistral_magic.errors import BudgetExceeded
from mistral_magic.money import tokens
from mistral_magic.money.usage import CallRecord
from mistral_magic.show.answer import INTERRUPTED_MARK

ROOT = Path(__file__).resolve().parents[1]
SLOW = {"token_delay_ms": 20, "answer_tokens": 2000}  # about 40 s if nobody stops it


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll `predicate` until it is true (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def session(ip):
    return mistral_magic.session()


@pytest.fixture
def magics(session):
    return session.settings


def transcript(panel) -> list[str]:
    """The panel's turns as their text/plain (their HTML is checked in test_render.py)."""
    return [out["data"]["text/plain"] for out in panel.history.outputs]


# -- import and display -------------------------------------------------------------


def test_import_is_light():
    code = (
        "import sys, mistral_magic.widgets\n"
        "print([m for m in ('ipywidgets', 'mistralai', 'pandas') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_displayed_view_carries_its_text(ip, session):
    meter = widgets.show_meter(session, force=True)
    shown = ip.display_pub.messages[-1]["data"]
    assert shown["application/vnd.jupyter.widget-view+json"]["model_id"] == meter.widget.model_id
    assert shown["text/plain"].startswith("mistral_magic usage: 0 calls")
    assert "VBox(" not in shown["text/plain"]


# -- the usage meter ----------------------------------------------------------------


def test_meter_follows_cells_with_a_per_model_table(ip, session):
    meter = widgets.show_meter(session, force=True, min_interval=0)
    assert meter.totals["calls"] == 0 and meter.updates == 1
    run(ip, "%%mistral\nFirst question.")
    run(ip, "%%mistral -m mistral-large-latest\nSecond question.")
    assert meter.updates == 3  # one render per call
    totals = session.ledger.totals()
    assert meter.totals == totals and totals["calls"] == 2
    records = session.ledger.records
    assert f"{sum(r.prompt_tokens for r in records):,} tokens in" in meter.summary.value
    assert f"{sum(r.completion_tokens for r in records):,} out" in meter.summary.value
    assert "2 calls" in meter.summary.value and "$" in meter.summary.value
    table = meter.by_model.value
    assert table.count("<tr>") == 3  # header + two models
    assert "mistral-small-latest" in table and "mistral-large-latest" in table
    text = meter.text()
    assert "mistral-large-latest" in text and "no budget set" in text


def test_meter_budget_bar(ip, session):
    meter = widgets.show_meter(session, force=True, min_interval=0)
    assert meter.budget_fraction is None
    assert meter.budget_bar.layout.display == "none"
    assert "no budget set" in meter.budget_label.value
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.01")
    assert meter.budget_bar.layout.display is None and meter.budget_bar.value == 0
    run(ip, "%%mistral --max-tokens 200\nHow much does this cost?")
    spent = session.ledger.spent
    assert spent == session.last.cost > 0
    assert meter.budget_fraction == pytest.approx(spent / 0.01)
    assert meter.budget_bar.value == pytest.approx(spent / 0.01)
    assert meter.budget_bar.bar_style == "success"
    assert "of $0.01 budget" in meter.budget_label.value
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {spent / 2}")  # overspent
    assert meter.budget_bar.value == 1.0 and meter.budget_bar.bar_style == "danger"
    ip.run_line_magic("config", "MistralMagics.budget_usd = None")
    assert meter.budget_bar.layout.display == "none"


def test_meter_coalesces_a_burst_from_another_thread(session):
    meter = widgets.UsageMeter(session, min_interval=0.05)
    before = meter.updates

    def burst():
        for _ in range(300):
            session.ledger.record(CallRecord(model="mistral-small-latest", prompt_tokens=10,
                                             completion_tokens=5, cost=1e-6, backend="offline"))

    worker = threading.Thread(target=burst)
    worker.start()
    worker.join()
    wait_until(lambda: meter.totals["calls"] == 300, what="the trailing render")
    assert meter.updates - before < 60  # 300 records, a few renders
    assert "300 calls" in meter.summary.value and "3,000 tokens in" in meter.summary.value


def test_meter_follows_dataframe_extraction(ip, session):
    meter = widgets.show_meter(session, force=True, min_interval=0)
    threads = set()
    session.ledger.subscribe(lambda record: threads.add(threading.current_thread().name))
    run(ip, "import pandas as pd\n"
            "df = pd.DataFrame({'bio': ['Ada, 36, London.', 'Alan, 41, Leeds.', 'Grace, 85.']})")
    run(ip, "out = df.mistral.extract('Who is this? {bio}', schema='name, age int', "
            "progress=False)")
    assert ip.user_ns["out"]["_error"].isna().all()
    assert threads == {"mistral_magic-loop"}  # recorded from the background loop
    assert meter.totals["calls"] == 3 and "3 calls" in meter.summary.value


def test_meter_close_stops_following(ip, session):
    meter = widgets.UsageMeter(session, min_interval=0)
    meter.close()
    updates = meter.updates
    run(ip, "%%mistral\nAfter close.")
    assert meter.updates == updates


# -- the settings panel -------------------------------------------------------------


def test_settings_model_dropdown_lists_chat_models_with_prices(session, magics):
    panel = widgets.SettingsPanel(magics)
    labels = dict((value, label) for label, value in panel.model.options)
    assert labels["mistral-small-2603"] == "mistral-small-2603 · 256k ctx · $0.15/$0.60"
    assert labels["mistral-small-latest"].startswith("mistral-small-latest → mistral-small-2603")
    assert labels["codestral-2508"].startswith("codestral-2508 · 128k ctx")
    assert "mistral-embed" not in labels and "mistral-ocr-2512" not in labels
    assert panel.model.value == magics.model == "mistral-small-latest"
    assert panel.message.value == ""
    assert "offline" in panel.backend_label.value


def test_settings_widgets_change_the_traits_config_sees(ip, session, magics, capsys):
    panel = widgets.SettingsPanel(magics)
    panel.model.value = "mistral-large-latest"
    assert magics.model == "mistral-large-latest"
    ip.run_line_magic("config", "MistralMagics")
    assert "Current: 'mistral-large-latest'" in capsys.readouterr().out
    # temperature: "model default" is None; unticking it uses the slider
    assert magics.temperature is None and panel.default_temperature.value
    assert panel.temperature.disabled
    panel.default_temperature.value = False
    panel.temperature.value = 0.7
    assert magics.temperature == 0.7
    panel.default_temperature.value = True
    assert magics.temperature is None
    panel.max_tokens.value = 64
    assert magics.max_tokens == 64
    run(ip, "%%mistral\nUse the panel's settings.")
    request = session.last.request
    assert request["model"] == "mistral-large-latest" and request["max_tokens"] == 64
    assert "temperature" not in request
    panel.max_tokens.value = 0
    assert magics.max_tokens is None


def test_settings_follow_config(ip, magics):
    panel = widgets.SettingsPanel(magics)
    ip.run_line_magic("config", "MistralMagics.model = 'codestral-latest'")
    assert panel.model.value == "codestral-latest"
    ip.run_line_magic("config", "MistralMagics.temperature = 0.2")
    assert panel.temperature.value == 0.2 and not panel.default_temperature.value
    assert not panel.temperature.disabled
    ip.run_line_magic("config", "MistralMagics.max_tokens = 300")
    assert panel.max_tokens.value == 300
    ip.run_line_magic("config", "MistralMagics.max_tokens = None")
    assert panel.max_tokens.value == 0
    # a model the backend does not list (a fine-tune) is added, not refused
    ip.run_line_magic("config", "MistralMagics.model = 'ft:my-tuned-model'")
    assert panel.model.value == "ft:my-tuned-model"
    assert "not listed" in panel.model.label and "price unknown" in panel.model.label
    assert magics.model == "ft:my-tuned-model"
    panel.close()
    ip.run_line_magic("config", "MistralMagics.model = 'mistral-small-latest'")
    assert panel.model.value == "ft:my-tuned-model"  # closed: no longer follows


def test_settings_chat_selector(ip, session, magics):
    run(ip, "%%mistral -c tutor\nHello tutor.")
    panel = widgets.SettingsPanel(magics)
    assert panel.chat.value == "default"
    assert set(panel.chat.options) == {"default", "tutor"}
    panel.chat.value = "review"  # typed: a new chat name
    assert magics.chat == "review"
    assert "review" in panel.chat.options
    panel.chat.value = "   "  # cleared: the chat there was stays
    assert panel.chat.value == "review" and magics.chat == "review"
    run(ip, "%%mistral -c later\nAnother chat.")
    assert "later" in panel.chat.options  # follows new chats


def test_settings_panel_opens_when_listing_fails(ip, magic_server, magics):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    magic_server.set_faults({"error_status": 503})
    panel = widgets.SettingsPanel(magics)
    assert "could not list models" in panel.message.value and "503" in panel.message.value
    assert panel.model.value == "mistral-small-latest"
    assert [value for _, value in panel.model.options] == ["mistral-small-latest"]
    panel.max_tokens.value = 10  # a change that works clears the message
    assert panel.message.value == "" and magics.max_tokens == 10


# -- the chat panel -----------------------------------------------------------------


def test_chat_panel_send_records_turn_and_ledger_once(session):
    panel = widgets.ChatPanel(session, "notes")
    future = panel.send("What is a p-value?")
    turn = future.result(30)
    assert turn is panel.wait(1)
    assert turn.status == "ok" and turn.answer and turn.prompt == "What is a p-value?"
    chat = session.chats.get("notes")
    assert chat.turns == [turn]
    rows = session.ledger.records
    assert len(rows) == 1
    row = rows[0]
    assert (row.chat, row.kind, row.status, row.backend) == ("notes", "chat", "ok", "offline")
    assert row.prompt_tokens == tokens.count_messages(
        [{"role": "user", "content": "What is a p-value?"}])
    assert row.completion_tokens == turn.completion_tokens > 0
    assert row.cost == pytest.approx(session.prices.cost(row.model, row.prompt_tokens,
                                                         row.completion_tokens))
    # The offline label line is shown above the answer, as in a cell; the turn keeps the answer.
    assert transcript(panel) == ["You: What is a p-value?",
                                 f"mistral-small-latest: {turn.banner}\n\n{turn.answer}"]
    assert panel.live.outputs == ()
    assert "chat notes" in panel.status.value and "session $" in panel.status.value
    assert not panel.send_button.disabled and panel.stop_button.disabled


def test_send_button_takes_the_input_box(session):
    panel = widgets.ChatPanel(session, "box")
    panel.input.value = "  Hello from the box  "
    panel.send_button.click()
    turn = panel.wait(30)
    assert turn.prompt == "Hello from the box" and panel.input.value == ""
    panel.send_button.click()  # empty input: said in the status line, nothing sent
    assert "type a message first" in panel.status.value
    assert len(session.ledger) == 1


def test_panel_and_cells_share_one_chat(ip, session):
    run(ip, "%%mistral -c pair\nTell me about penguins.", cell_id="c1")
    panel = widgets.ChatPanel(session, "pair")
    assert transcript(panel)[0] == "You: Tell me about penguins."
    panel.send("Where do they live?").result(30)
    assert session.chats.get("pair").turns[-1].prompt == "Where do they live?"
    run(ip, "%%mistral -c pair\nAnd what do they eat?", cell_id="c2")
    sent = session.last.request["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "Tell me about penguins.", "Where do they live?", "And what do they eat?"]
    assert len(panel.history.outputs) == 6  # the cell's turn appeared by itself
    assert transcript(panel)[4] == "You: And what do they eat?"
    # and the panel's next request carries every earlier turn, cells' and its own
    panel.send("Summarise.").result(30)
    assert len(session.chats.get("pair")) == 4
    assert "chat pair" in panel.status.value


def test_stop_keeps_partial_answer_marked_interrupted(ip, session, magic_server):
    magic_server.set_faults(SLOW)
    panel = widgets.ChatPanel(session, "slow")
    future = panel.send("Write a very long essay.")
    wait_until(lambda: len(panel.partial) > 20, what="streamed text")
    assert panel.busy and not panel.stop_button.disabled and panel.send_button.disabled
    assert panel.live.outputs  # the streaming answer is on show
    assert panel.stop() is True
    turn = panel.wait(10)
    assert future.done() and not future.cancelled()
    assert turn.status == "interrupted" and turn.answer
    assert panel.partial.startswith(turn.answer) or turn.answer.startswith(panel.partial)
    assert turn.completion_tokens == tokens.count_text(turn.answer) < 2000
    rows = session.ledger.records
    assert [r.status for r in rows] == ["interrupted"]
    assert rows[0].cost > 0 and rows[0].cost == pytest.approx(session.prices.cost(
        rows[0].model, rows[0].prompt_tokens, rows[0].completion_tokens))
    assert transcript(panel)[1].endswith(INTERRUPTED_MARK)
    assert "interrupted" in panel.status.value
    assert not panel.busy and not panel.send_button.disabled and panel.stop_button.disabled
    assert panel.stop() is False  # nothing left to stop
    # the loop and the kernel are fine: send again; the cut answer is context, so the
    # model can be asked to continue it
    magic_server.set_faults(None)
    again = panel.send("Shorter, please.").result(30)
    assert again.status == "ok"
    sent = session.build_request("x", chat="slow")["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[1]["content"] == turn.answer
    run(ip, "%%mistral -c slow\nStill here?")
    assert len(session.chats.get("slow")) == 3
    assert [r.status for r in session.ledger.records] == ["interrupted", "ok", "ok"]


def test_kernel_stays_free_while_the_panel_streams(ip, session, magic_server):
    magic_server.set_faults(SLOW)
    panel = widgets.ChatPanel(session, "background")
    panel.send("A long answer, please.")
    run(ip, "x = 6 * 7")
    run(ip, "%%mistral -c other --max-tokens 5\nQuick one.")  # the kernel's own call
    assert ip.user_ns["x"] == 42 and session.last.chat == "other"
    assert panel.busy  # still streaming in the background
    panel.stop()
    assert panel.wait(10).status == "interrupted"


def test_streaming_updates_are_bounded(session, magic_server):
    magic_server.set_faults({"answer_tokens": 1500, "token_delay_ms": 1})
    panel = widgets.ChatPanel(session, "long")
    turn = panel.send("A long answer.").result(60)
    assert turn.completion_tokens == 1500
    assert 1 <= panel.updates < 40  # one per token would be 1,500


def test_budget_refuses_before_sending(ip, session, magic_server):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.000001")
    panel = widgets.ChatPanel(session, "costly")
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded):
        panel.send("Expensive?")
    panel.input.value = "Expensive?"
    panel.send_button.click()
    assert "Refused" in panel.status.value and "budget" in panel.status.value
    assert magic_server.request_count() == before
    assert len(session.ledger) == 0 and len(session.chats.get("costly")) == 0
    assert not panel.busy and not panel.send_button.disabled


def test_one_request_at_a_time(session, magic_server):
    magic_server.set_faults(SLOW)
    panel = widgets.ChatPanel(session, "one")
    panel.send("First.")
    with pytest.raises(RuntimeError, match="still answering"):
        panel.send("Second.")
    panel.stop()
    panel.wait(10)
    with pytest.raises(ValueError, match="nothing to send"):
        panel.send("   ")


def test_failed_request_is_recorded_once_and_shown(ip, session, magic_server):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    magic_server.set_faults({"error_status": 503})
    panel = widgets.ChatPanel(session, "broken")
    turn = panel.send("Anyone there?").result(30)
    assert turn.status == "error" and "503" in turn.error
    assert [r.status for r in session.ledger.records] == ["error"]
    assert "503" in panel.status.value and "color:#b00" in panel.status.value
    assert "503" in transcript(panel)[1]
    magic_server.set_faults(None)
    assert panel.send("Now?").result(30).status == "ok"


def test_panel_follows_a_chat_reset_everywhere(ip, session):
    panel = widgets.ChatPanel(session, "default")
    run(ip, "%%mistral\nOne.")
    assert len(panel.history.outputs) == 2
    ip.run_line_magic("mistral", "reset --all")
    run(ip, "%%mistral\nTwo.")  # a new Chat object under the same name
    assert transcript(panel) == ["You: Two.", transcript(panel)[1]]
    panel.send("Three.").result(30)
    assert len(session.chats.get("default")) == 2


def test_close_stops_a_running_request(session, magic_server):
    magic_server.set_faults(SLOW)
    panel = widgets.ChatPanel(session, "closing")
    panel.send("Long.")
    wait_until(lambda: panel.partial, what="streamed text")
    panel.close()
    assert panel.wait(10).status == "interrupted"


# -- where widgets cannot render ----------------------------------------------------


def test_text_versions_under_one_line_that_says_why(ip, session, magics):
    run(ip, "%%mistral -c notes\nRemember the milk.")
    assert not widgets.widgets_available(ip)  # a plain shell has no kernel
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meter = widgets.show_meter(session)
        panel = widgets.show_panel(magics)
        chat = widgets.show_chat(session, "notes")
    assert not caught, "said in one line, not through the warning machinery (file, line, source)"
    assert isinstance(meter, widgets.TextView) and meter.startswith("mistral_magic usage: 1 call ")
    assert "mistral-small-latest" in meter
    assert "model = 'mistral-small-latest'" in panel and "%config MistralMagics" in panel
    assert "%%mistral -c notes" in chat and "Remember the milk." in chat
    shown = [m["data"] for m in ip.display_pub.messages[-3:]]
    note, _, first = shown[0]["text/plain"].partition("\n")
    assert note == ("(No widget front end here, so the usage meter is text; in JupyterLab or "
                    "Notebook it is a live widget.)")
    assert [first, shown[1]["text/plain"], shown[2]["text/plain"]] == [meter, panel, chat]
    assert all(list(d) == ["text/plain"] for d in shown)
    assert repr(meter) == str(meter)


def test_force_builds_widgets_in_a_plain_shell(session):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        panel = widgets.show_chat(session, "forced", force=True)
    assert isinstance(panel, widgets.ChatPanel)


# -- in a real kernel ---------------------------------------------------------------


def test_updates_from_the_background_loop_reach_a_real_kernel_front_end(tmp_path):
    """nbclient records widget state from the comm messages, as a front end would."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "%load_ext mistral_magic",
        "import mistral_magic\nfrom mistral_magic import widgets\n"
        "s = mistral_magic.session()\n"
        "assert widgets.widgets_available()\n"
        "meter = widgets.show_meter(s, min_interval=0)\n"
        "panel = widgets.show_chat(s, 'nb')",
        "turn = panel.send('Hello from the panel').result(60)\n"
        "assert turn.status == 'ok', turn",
        "%%mistral -c nb\nAnd a follow-up from a cell.",
        "print(meter.totals['calls'], len(panel.history.outputs))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     store_widget_state=True, resources={
                                         "metadata": {"path": str(tmp_path)}})
    env = {k: v for k, v in os.environ.items() if k != "MISTRAL_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    client.execute(env=env)
    printed = nb.cells[-1].outputs[0]["text"].split()
    assert printed[:2] == ["2", "4"]
    shown = [o["data"] for o in nb.cells[1].outputs if o.get("output_type") == "display_data"]
    assert len(shown) == 2 and all("application/vnd.jupyter.widget-view+json" in d for d in shown)
    # The fallbacks a saved notebook shows followed the views to their final state.
    assert shown[0]["text/plain"].startswith("mistral_magic usage: 2 calls")
    assert "2 calls" in shown[0]["text/html"] and "mistral-small-latest" in shown[0]["text/html"]
    assert shown[1]["text/plain"].startswith("Chat 'nb': 2 turns")
    assert "Hello from the panel" in shown[1]["text/html"]
    assert "<p>And a follow-up from a cell.</p>" in shown[1]["text/html"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    values = [m["state"].get("value", "") for m in state.values()
              if m["model_name"] == "HTMLModel"]
    # the meter's summary was last set from the kernel's thread (the cell), the
    # panel's status and transcript from the background loop's thread
    assert any("2 calls" in v for v in values)
    assert any("chat nb" in v and "session $" in v for v in values)
    outputs = [m["state"]["outputs"] for m in state.values() if m["model_name"] == "OutputModel"]
    assert any(len(o) == 4 and "Hello from the panel" in o[0]["data"]["text/html"]
               for o in outputs)
