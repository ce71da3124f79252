"""DataFrames in a prompt: tables on their own lines, floats at display precision, large
frames as a summary, format specs that choose, and a dry run that shows what is sent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run

from mistral_magic.errors import PromptError
from mistral_magic.inputs.prompt import fill


def sales(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "region": rng.choice(["north", "south", "east"], n),
        "price": rng.random(n) * 100,
        "units": rng.integers(1, 50, n),
        "email": [f"customer{i}@example.com" for i in range(n)],
        "note": [None if i % 4 else "late delivery" for i in range(n)],
    })


def user_text(ip) -> str:
    return ip.user_ns["req"]["messages"][-1]["content"]


def test_a_small_frame_is_a_table_on_its_own_lines_with_rounded_floats():
    df = pd.DataFrame({"score": [0.345584192064786, 1.5, 2e-9], "name": ["a", "b", "c"]})
    text = fill("Rank these: {df} by score.", {"df": df}).text
    lines = text.splitlines()
    assert lines[0] == "Rank these: " and lines[1] == "|  | score | name |"
    assert lines[-1] == " by score." and lines[-2] == "| 2 | 2e-09 | c |"
    assert "| 0 | 0.345584 | a |" in lines and "| 1 | 1.5 | b |" in lines
    assert "0.3455841" not in text
    with pd.option_context("display.precision", 2):
        assert "| 0 | 0.35 | a |" in fill("{df}", {"df": df}).text
    # A table already on its own line gets no extra break; a Series is a one-column table.
    assert fill("Data:\n{df}\nEnd", {"df": df}).text.startswith("Data:\n|  | score")
    series = fill("Look: {s}", {"s": df["score"].rename("score")}).text
    assert series.splitlines()[1:3] == ["|  | score |", "|---|---|"]


def test_a_large_frame_goes_as_a_summary_that_says_so():
    df = sales(10_000)
    filled = fill("What patterns are in {df}?", {"df": df})
    text = filled.text
    first = text.splitlines()[1]
    assert first.startswith("(A summary of a DataFrame of 10,000 rows × 5 columns, not its rows")
    assert "| price | float64 | 0 |" in text and "| note |" in text
    missing = int((df["note"].isna()).sum())
    assert f"| note | {df['note'].dtype} | {missing} |" in text
    assert "describe():" in text and "| price | 10000 |" in text
    assert f"| {round(df['price'].mean(), 6)} |" in text or f"{df['price'].mean():.6f}"[:7] in text
    assert "5 sample rows:" in text
    # Only the sampled rows' values are in the text: not the first twenty.
    emails = [e for e in df["email"] if e in text]
    assert len(emails) <= 5 + 1  # the sample, and describe()'s most frequent value
    assert len(text) < 4000
    (sent,) = filled.frames
    assert sent.form == "summary" and sent.shape == (10_000, 5)
    assert sent.columns == list(df.columns) and len(sent.rows) == 5
    assert all(df.loc[label, "email"] in text for label in sent.rows)
    # The same frame makes the same prompt (the sample is drawn with a fixed seed).
    assert fill("What patterns are in {df}?", {"df": df}).text == text


def test_format_specs_force_rows_or_the_summary():
    big, small = sales(500), sales(4)
    rows = fill("{big:rows}", {"big": big})
    assert rows.text.count("\n| ") == 20 and "first 20 of 500 rows" in rows.text
    assert rows.frames[0].form == "rows" and rows.frames[0].rows == list(range(20))
    three = fill("{big:rows=3}", {"big": big}).text
    assert "| 2 | " in three and "| 3 | " not in three and "first 3 of 500 rows" in three
    assert fill("{small:summary}", {"small": small}).text.startswith("(A summary of a DataFrame of 4 rows")
    raw = fill("{big!r}", {"big": big})
    assert raw.text.strip("\n") == repr(big) and raw.frames[0].form == "repr"
    with pytest.raises(PromptError, match=r"rows \(its first 20 rows\), rows=N .* or summary"):
        fill("{big:csv}", {"big": big})


def test_the_dry_run_shows_the_prompt_as_sent_and_the_frames(ip):
    ip.user_ns["df"] = sales(1000)
    run(ip, "%%mistral --dry-run -o req\nWhat patterns do you see in {df}?")
    text = user_text(ip)
    assert text.startswith("What patterns do you see in \n(A summary of a DataFrame of 1,000 rows")
    shown = [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]
    assert any("DataFrames: df (summary of 1,000 × 5)" in s for s in shown)
    assert any(s.startswith(text) and s.endswith("The prompt as sent") for s in shown)


def test_fifty_rows_with_rows_spec_keep_the_bounded_table(ip):
    ip.user_ns["df"] = pd.DataFrame({"x": range(50), "y": ["a"] * 50})
    run(ip, "%%mistral --dry-run -o req\nData: {df:rows}")
    content = user_text(ip)
    assert content.startswith("Data: \n|  | x | y |") and "| 19 | 19 | a |" in content
    assert "| 20 |" not in content and "first 20 of 50 rows" in content
