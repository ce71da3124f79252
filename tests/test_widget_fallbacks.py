"""What a saved notebook shows of the widgets, the chat box's scrolling, the settings' labels.

A displayed view carries `text/plain` and `text/html` beside the widget; both follow the
view to its final state (after each cell, and once the panel's own calls settle), so a
notebook saved after four calls does not show "0 calls". The browser tests check the same
through a save and nbconvert (`test_browser_saved.py`).
"""

from __future__ import annotations

import pytest
from conftest import run
from test_widgets import wait_until

import mistral_magic
from mistral_magic import widgets

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def session(ip):
    return mistral_magic.session()


def shown_for(ip, view) -> list[dict]:
    """Every display message of `view` (the first display, then its updates), in order."""
    display_id = view.handle.display_id
    return [m for m in ip.display_pub.messages
            if "data" in m and m["transient"].get("display_id") == display_id]


def test_the_meters_fallbacks_follow_the_cells(ip, session):
    meter = widgets.show_meter(session, force=True)
    first = shown_for(ip, meter)
    assert len(first) == 1 and first[0]["data"]["text/plain"].startswith("mistral_magic usage: 0 calls")
    run(ip, "%%mistral\nOne question.")
    run(ip, "%%mistral\nAnd another.")
    last = shown_for(ip, meter)[-1]
    assert last["update"], "the display is updated in place, not shown again"
    data = last["data"]
    assert data[WIDGET_VIEW]["model_id"] == meter.widget.model_id  # still the live widget
    assert data["text/plain"].startswith("mistral_magic usage: 2 calls")
    assert "2 calls" in data["text/html"] and "<table" in data["text/html"]
    assert "mistral-small-latest" in data["text/html"]
    # A cell that changes nothing sends no update (each update redraws the widget in Lab).
    count = len(shown_for(ip, meter))
    run(ip, "x = 1")
    assert len(shown_for(ip, meter)) == count


def test_the_chat_fallback_is_rendered_and_holds_the_turn_sent_with_send(ip, session):
    run(ip, "%%mistral -c side\nWhat is **bias**?")
    panel = widgets.show_chat(session, "side", force=True)
    html = shown_for(ip, panel)[0]["data"]["text/html"]
    assert "<strong>bias</strong>" in html and "**bias**" not in html  # rendered, not raw Markdown
    panel.send("And *variance*?").result(30)
    # No cell ran: the fallback follows once the panel's change has settled.
    wait_until(lambda: "variance" in shown_for(ip, panel)[-1]["data"]["text/html"],
               what="the fallback to follow the Send")
    data = shown_for(ip, panel)[-1]["data"]
    assert "<em>variance</em>" in data["text/html"] and "chat</b> side · 2 turns" in data["text/html"]
    assert data["text/plain"].startswith("Chat 'side': 2 turns")
    assert data[WIDGET_VIEW]["model_id"] == panel.widget.model_id
    panel.close()


def test_the_chat_transcript_scrolls_from_its_end(session):
    panel = widgets.ChatPanel(session, "scroll")
    layout = panel.transcript.layout
    assert (layout.display, layout.flex_flow, layout.overflow) == ("flex", "column-reverse", "auto")
    assert layout.max_height == "32em"
    # The answer streams inside the scrolled box, under the turns before it.
    inner = panel.transcript.children[0]
    assert inner.children == (panel.history, panel.live)
    assert inner.layout.flex == "0 0 auto"  # it must not shrink and scroll by itself
    panel.close()


def test_the_settings_say_which_temperature_applies(ip, session):
    magics = session.settings
    panel = widgets.SettingsPanel(magics)
    assert panel.model.layout.width == "100%"  # room for the label's price
    assert magics.temperature is None
    assert "the model&#x27;s default applies" in panel.temperature_note.value
    assert not panel.temperature.readout  # the slider's number is not what is sent
    panel.default_temperature.value = False
    panel.temperature.value = 0.7
    assert "0.70 applies" in panel.temperature_note.value and panel.temperature.readout
    run(ip, "%config MistralMagics.temperature = None")
    assert "default applies" in panel.temperature_note.value and not panel.temperature.readout
    panel.close()
