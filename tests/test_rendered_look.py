"""How answers look beside the notebook: headings below its own, the reasoning as an aside,
marks in glyphs that Debian's default fonts have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mistral_magic.show import answer, display, render


def test_answer_headings_sit_below_the_notebooks_own():
    shown = render.markdown("# Title\n\n## Part\n\n#### Deep\n\n###### Deepest")["text/html"]
    assert re.findall(r"<(h\d)>", shown) == ["h3", "h4", "h6", "h6"]
    assert "<h1>" not in shown and "<h2>" not in shown


def test_an_opened_reasoning_block_is_muted_and_indented():
    block = render.reasoning("Let me think about **this**.", 42, open_=True)
    opening = re.match(r'<details class="mistral-reasoning" style="([^"]+)" open="">', block)
    assert opening, block
    style = dict(part.split(":", 1) for part in opening[1].split(";"))
    assert "content-font-color2" in style["color"] and "1.5em" in style["margin"]
    assert style["border-left"].startswith("3px solid")
    # The style is ours, fixed: a model's text cannot set one, also inside the block.
    sneaky = render.reasoning('<details style="color:red">x</details> <b style="x">y</b>')
    assert len(re.findall(r"<[^>]*\sstyle=", sneaky)) == 1
    assert not re.findall(r"<[^>]*\sstyle=", render.markdown_html('<p style="color:red">x</p>'))


def font_cmap() -> set[int]:
    """The characters of DejaVu Sans, the default sans font of Debian (matplotlib ships it)."""
    fontTools = pytest.importorskip("fontTools.ttLib")
    matplotlib = pytest.importorskip("matplotlib")
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return set(fontTools.TTFont(path).getBestCmap())


def test_marks_use_glyphs_the_default_fonts_have():
    covered = font_cmap()
    marks = {"interrupted": answer.INTERRUPTED_MARK, "failed": answer.FAILED_MARK,
             "cursor": display.CURSOR}
    for name, text in marks.items():
        missing = [c for c in text if ord(c) > 127 and ord(c) not in covered]
        assert not missing, f"the {name} mark uses {missing}, which DejaVu Sans lacks"
    assert "⏹" not in answer.INTERRUPTED_MARK
