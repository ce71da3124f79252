"""What a first-time user reads in values and tables: the answer without the offline label,
one missing marker, sensible rounding, short cell ids, OCR prices, settings' help in full,
a plain manual, edits said rather than returned, the error `%mistral fix` fixes, the dry
run's worst case."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import run

import mistral_magic
from mistral_magic.offline.prose import label

UUID = "3f1c2b7e-5d4a-4e8f-9a0b-1c2d3e4f5a6b"


def test_the_offline_label_stays_on_screen_out_of_values_and_history(ip):
    run(ip, "%%mistral -o answer\nExplain overfitting in one paragraph.", cell_id=UUID)
    banner = label("mistral-small-latest")
    answer = mistral_magic.session().last
    assert answer.text.startswith(banner)  # what the server sent, and what is shown
    shown = [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]
    assert "Offline answer from mistral-small-latest" in shown["data"]["text/html"]
    assert not ip.user_ns["answer"].startswith("*Offline") and "Offline answer" not in ip.user_ns["answer"]
    assert ip.user_ns["answer"] == answer.reply and answer.text.endswith(answer.reply)
    history = ip.run_line_magic("mistral", "history")
    said = history.loc[history["role"] == "assistant", "text"].iloc[0]
    assert not said.startswith("*Offline") and said.startswith("## ")
    # Not sent back either: the next cell's context holds the answer alone.
    turn = mistral_magic.session().chats.get("default").turns[0]
    assert turn.answer == answer.reply and turn.banner == banner.strip()
    # The chat panel shows it, as the cell did.
    from mistral_magic import widgets

    panel = widgets.ChatPanel(mistral_magic.session(), "default")
    assert "Offline answer from" in panel.history.outputs[-1]["data"]["text/html"]
    panel.close()


def test_a_real_backends_answer_is_never_cut():
    from mistral_magic.show.answer import split_banner

    text = label("m") + "\n\nHello"
    assert split_banner(text, "offline") == (label("m"), "Hello")
    assert split_banner(text, "mistral") == ("", text)  # only the offline server labels
    assert split_banner("*Offline answer from you*\n\nHi", "offline")[0] == ""


def test_one_missing_marker_rounded_times_and_short_cell_ids(ip):
    def greet(name: str) -> str:
        """Say hello."""
        return f"Hello {name}"

    ip.user_ns["greet"] = greet
    run(ip, "%%mistral --tools greet\nGreet Ada.", cell_id=UUID)
    run(ip, "%%mistral --no-history\nOne more.")
    history = ip.run_line_magic("mistral", "history")
    assert set(history["role"]) == {"user", "tool", "assistant"}
    assert set(history["cell"]) == {UUID[:8]}
    usage = ip.run_line_magic("mistral", "usage")
    for frame in (history, usage):
        text = repr(frame)
        assert "NaN" not in text and "None" not in text, text  # one marker: <NA>
        for column in frame.columns:
            if frame[column].dtype == object:  # no mixed object columns left
                raise AssertionError(f"{column} is an object column")
    assert history["cost"].isna().sum() >= 2 and "<NA>" in repr(history)
    assert usage["chat"].isna().any()  # the --no-history call: missing, not the string "None"
    for column in ("latency_s", "ttft_s"):
        values = usage[column].dropna()
        assert (values == values.round(2)).all(), usage[column]
    assert str(usage["cost"].dtype) == "Float64" and str(usage["prompt_tokens"].dtype) == "Int64"


def test_models_show_every_model_and_ocr_prices_per_page(ip):
    models = ip.run_line_magic("mistral", "models")
    assert len(models) > 60
    html = models._repr_html_()
    assert html.count("<tr>") >= len(models) and "mistral-ocr-2505" in html  # not pandas' 10
    ocr = models.set_index("id").loc["mistral-ocr-2505"]
    assert ocr["per_1k_pages"] == pytest.approx(1.0)  # $0.001 a page
    assert pd.isna(ocr["input_per_1m"]) and "NaN" not in html
    chat = models.set_index("id").loc["mistral-small-latest"]
    assert chat["input_per_1m"] > 0 and pd.isna(chat["per_1k_pages"])
    assert type(models[models["vision"].fillna(False)]) is pd.DataFrame  # derived: plain frames


def test_config_shows_each_help_in_full_and_values_plainly(ip):
    config = ip.run_line_magic("mistral", "config")
    cache_help = config.set_index("setting").loc["cache", "help"]
    assert len(cache_help) > 200
    assert cache_help in config._repr_html_().replace("&quot;", '"').replace("&#x27;", "'")
    assert cache_help.split()[-1] in repr(config)  # its last word is shown too
    values = dict(zip(config["setting"], config["value"], strict=True))
    assert values["model"] == "mistral-small-latest" and values["temperature"] == "(none)"


def test_the_manual_is_plain_text_and_starts_with_the_cell_magic(ip):
    doc = ip.find_cell_magic("mistral").__doc__
    assert doc.startswith("%%mistral [-m MODEL]")
    assert "\n%mistral COMMAND" in doc and "%mistral export" in doc
    assert "``" not in doc and "::\n" not in doc and "\n::" not in doc
    assert "Options of a %%mistral cell:" in doc and "--max-tokens" in doc
    # The parser's own messages still name the magic as before.
    with pytest.raises(Exception, match="unknown option --frobnicate; %%mistral"):
        ip.run_cell_magic("mistral", "--frobnicate", "x")


def test_fix_names_the_error_and_its_cell_above_the_explanation(ip):
    run(ip, "tickets = {'id': [1]}\ntickets['status']", ok=False)
    ip.run_line_magic("mistral", "fix")
    said = [m["data"] for m in ip.display_pub.messages if "data" in m]
    first = next(i for i, d in enumerate(said) if "Fixing" in d.get("text/plain", ""))
    heading = said[first]
    assert heading["text/plain"].startswith("Fixing KeyError: 'status', raised by this cell:")
    assert "<code>KeyError: 'status'</code>" in heading["text/html"].replace("&#x27;", "'")
    assert '<pre><code class="language-python">tickets = {' in heading["text/html"].replace(
        "&#x27;", "'")
    answer = [i for i, d in enumerate(said) if "mistral-small-latest" in d.get("text/plain", "")]
    assert answer and answer[-1] > first  # above the explanation


def test_dry_run_says_the_worst_case_is_the_models_limit_without_max_tokens(ip):
    run(ip, "%%mistral --dry-run\nHow long could this answer be?")
    said = ip.display_pub.messages[-1]["data"]["text/plain"]
    summary = said.splitlines()[-1]
    assert "worst case with 1,024" not in summary
    assert "no max_tokens, so the worst case is the model's limit (" in summary
    assert "answer tokens: $" in summary and "1,024 answer tokens cost $" in summary
    run(ip, "%%mistral --dry-run --max-tokens 50\nAnd with a cap?")
    assert "worst case with 50 answer tokens: $" in ip.display_pub.messages[-1]["data"]["text/plain"]
