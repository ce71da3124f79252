"""Math in a prompt is sent as written; `{name}` elsewhere is filled, and said (issue 18, item 7)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import run

import mistral_magic
from mistral_magic.inputs.prompt import fill, names_in
from mistral_magic.show import markdown, render


def sent(ip) -> str:
    """The user message of the last request the session sent."""
    return mistral_magic.session().last.request["messages"][-1]["content"]


def provenances(ip) -> list[dict]:
    return [m["metadata"]["mistral_magic"] for m in ip.display_pub.finals()
            if "mistral_magic" in m["metadata"]]


def test_math_is_sent_as_written_while_names_around_it_are_filled(ip):
    ip.user_ns.update(n=30, i=4)
    run(ip, "%%mistral\nWith {n} rows, is $\\frac{1}{n}\\sum_{i} x_i$ the mean?")
    assert sent(ip) == "With 30 rows, is $\\frac{1}{n}\\sum_{i} x_i$ the mean?"
    assert provenances(ip)[-1]["interpolated"] == ["n"]


def test_an_undefined_name_inside_math_is_no_error(ip):
    assert "k" not in ip.user_ns
    run(ip, "%%mistral\nExplain $\\binom{n}{k}$ and \\(x_{k}\\).")
    assert sent(ip) == "Explain $\\binom{n}{k}$ and \\(x_{k}\\)."
    result = run(ip, "%%mistral\nExplain {k} outside math.", ok=False)
    assert "Unknown name {k}" in str(result.error_in_exec)


@pytest.mark.parametrize("template, expected", [
    # prices: a `$` before a digit opens nothing, one before a space closes nothing
    ("It costs $5 and {n} and $10.", "It costs $5 and 30 and $10."),
    ("From $5 to ${n} each", "From $5 to $30 each"),
    ("between ${lo} and ${hi}", "between $1 and $2"),
    # escaped dollars open no math
    ("range \\${lo}-\\${hi}", "range \\$1-\\$2"),
    # `$…$` as math reads it: `${lo}-$` is a formula, so {lo} stays (write \$ or a space)
    ("range ${lo}-${hi}", "range ${lo}-$2"),
    # display math over lines, in a block and inside a paragraph
    ("Intro {n}\n\n$$\n\\sum_{i} x_{n}\n$$\n\nafter {hi}", "Intro 30\n\n$$\n\\sum_{i} x_{n}\n$$\n\nafter 2"),
    ("see $$a_{n}$$ and {n}", "see $$a_{n}$$ and 30"),
    # brackets, inline and as a block, with text after a block's closing line kept
    ("\\(x_{n}\\) and \\[y_{n}\\] and {n}", "\\(x_{n}\\) and \\[y_{n}\\] and 30"),
    ("\\[\n\\bar x_{n}\n\\]\nover {n} rows", "\\[\n\\bar x_{n}\n\\]\nover 30 rows"),
    ("\\[x_{n}\\] where n is {n}", "\\[x_{n}\\] where n is 30"),
    ("\\begin{align}\na_{n} &= b\n\\end{align}\n{n}", "\\begin{align}\na_{n} &= b\n\\end{align}\n30"),
    # braces inside math are the formula's own; outside, {{ }} are literal braces
    ("$x^{{2}}$ and {{n}}", "$x^{{2}}$ and {n}"),
    # a `$` in code is no math: the name in it is filled, as before
    ("`echo $HOME {n}` and $y_{n}$", "`echo $HOME 30` and $y_{n}$"),
    # math in quotes, lists and tables
    ("> $a\n> b_{n}$ then {n}", "> $a\n> b_{n}$ then 30"),
    ("- $y_{n}$\n- {n}", "- $y_{n}$\n- 30"),
    ("| f | n |\n|---|---|\n| $x_{n}$ | {n} |", "| f | n |\n|---|---|\n| $x_{n}$ | 30 |"),
    ("Windows\r\nline $x_{n}$ {n}", "Windows\r\nline $x_{n}$ 30"),
])
def test_what_is_math_follows_the_renderer(template, expected):
    assert fill(template, {"n": 30, "lo": 1, "hi": 2}).text == expected


def test_the_renderer_and_the_prompt_agree_on_what_is_math():
    text = "Costs $5 and $10; the mean is $\\bar x$ and \\[s^2\\] here."
    html = render.markdown_html(text)
    assert html.count('class="math mathjax_process"') == len(markdown.math_spans(text)) == 2
    assert "$5 and $10" in html and "here." in html


def test_names_in_skips_math_so_rows_need_no_such_column(ip):
    assert names_in("Rate {review} on $s_{k}$ for {k2}") == ["review", "k2"]
    df = pd.DataFrame({"review": ["Great value.", "Broke at once."]})
    out = df.mistral.extract("Score $s_{k}$ of this review: {review}", schema="score float")
    assert list(out["_error"].isna()) == [True, True]
    assert len(mistral_magic.session().ledger.records) == 2


def test_dry_run_says_which_names_were_filled_in_and_which_stayed_in_math(ip):
    ip.user_ns.update(n=30, i=4, df=pd.DataFrame({"x": [1, 2]}))
    run(ip, "%%mistral --dry-run -o req\nIn {df} of {n} rows, is $\\frac{1}{n}\\sum_{i} x_i$ {n}?")
    footer = ip.display_pub.messages[-1]["data"]["text/plain"].splitlines()[-1]
    assert "filled in: df, n" in footer
    assert "inside math, sent as written: n, i" in footer
    assert "$\\frac{1}{n}\\sum_{i} x_i$ 30?" in ip.user_ns["req"]["messages"][-1]["content"]


def test_provenance_lists_the_names_filled_in(ip):
    ip.user_ns.update(n=30, df=pd.DataFrame({"x": [1, 2]}))
    run(ip, "%%mistral\nSummarise {df} ({n} rows, {df.shape[0]} shown).")
    assert provenances(ip)[-1]["interpolated"] == ["df", "n"]
    run(ip, "%%mistral --json\nGive {n} as JSON: {{\"n\": ...}}")
    assert provenances(ip)[-1]["interpolated"] == ["n"]
    run(ip, "%%mistral --no-interpolate\nSend {n} as is.")
    assert provenances(ip)[-1]["interpolated"] == []
    assert sent(ip) == "Send {n} as is."
