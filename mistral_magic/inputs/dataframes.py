"""A DataFrame or Series in a prompt: its rows as a Markdown table, or a summary of a large one.

    Summarise {df}             # up to 20 rows: a table; more: a summary (below)
    Look at {df:rows}          # the first 20 rows, whatever the size ({df:rows=50}: 50)
    Describe {df:summary}      # the summary, whatever the size
    {df!r}                     # pandas' own text (its repr), as printed in a cell

- **Rows.** At most `MAX_ROWS` rows and `MAX_COLS` columns, each cell on one line and
  cut at `MAX_CELL` characters, pipes escaped; the caps are stated under the table, so
  the model knows it sees a part.
- **Summary.** A frame with more rows than `MAX_ROWS` is described instead of cut: a
  line saying that it is a summary and of what shape, each column's dtype and missing
  values, ``describe()`` (one row per column) and `SAMPLE_ROWS` rows drawn at random
  with a fixed seed (the same frame makes the same prompt, so a stored answer is found
  again).
- **Numbers.** Floats are written at the display precision pandas uses for the frame
  (``pd.options.display.precision``, 6 unless changed): ``0.345584192064786`` goes as
  ``0.345584``; very large or very small ones in scientific notation.
- A table always stands on its own lines (`prompt.fill` puts a line break around it).

`Sent` says what of the frame went into the text: the columns and the row labels whose
values are in it (a summary's statistics are computed from every row of its columns),
for the dry run and ``%mistral sent``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_ROWS = 20
MAX_COLS = 12
MAX_CELL = 60
SAMPLE_ROWS = 5
SUMMARY_COLS = 40  # columns listed (dtype, missing, describe) in a summary
SPECS = ("rows", "rows=N", "summary")


@dataclass
class Sent:
    """What of one DataFrame a prompt carries: its form, shape, columns and row labels."""

    name: str
    form: str  # "rows" | "summary" | "repr"
    shape: tuple[int, int]
    columns: list = field(default_factory=list)
    rows: list = field(default_factory=list)  # labels of the rows whose values are in the text

    def describe(self) -> str:
        """One line: ``df (summary of 10,000 × 5)``."""
        what = {"rows": "rows", "summary": "summary", "repr": "repr"}[self.form]
        return f"{self.name} ({what} of {self.shape[0]:,} × {self.shape[1]:,})"


def is_frame(value: Any) -> bool:
    """Whether `value` is a pandas DataFrame or Series (without importing pandas)."""
    kind = type(value)
    return kind.__module__.startswith("pandas") and kind.__name__ in ("DataFrame", "Series")


def as_frame(value):
    """A Series as a one-column frame; a DataFrame as it is."""
    return value.to_frame() if type(value).__name__ == "Series" else value


def render(value, name: str = "", spec: str | None = None) -> tuple[str, Sent]:
    """The frame as prompt text by `spec` (None: rows when small, else the summary), and what
    went; a spec other than `SPECS` is a `PromptError` that lists them."""
    from ..errors import PromptError

    df = as_frame(value)
    if spec is None:
        spec = "rows" if len(df) <= MAX_ROWS else "summary"
    if spec == "summary":
        return summary(df, name)
    if spec == "rows":
        return rows(df, name)
    if spec.startswith("rows="):
        count = spec[5:].strip()
        if count.isdigit() and int(count) > 0:
            return rows(df, name, max_rows=int(count))
    raise PromptError(
        f"{{{name}:{spec}}}: a DataFrame takes the format rows (its first {MAX_ROWS} rows), "
        f"rows=N (its first N) or summary; write {{{name}}} for rows or a summary by its size"
    )


def rows(df, name: str = "", max_rows: int = MAX_ROWS, max_cols: int = MAX_COLS) -> tuple[str, Sent]:
    """The first rows as a bounded Markdown table, and what went."""
    shown = df.iloc[:max_rows, :max_cols]
    text = table(df, max_rows, max_cols)
    return text, Sent(name, "rows", df.shape, list(shown.columns), list(shown.index))


def table(df, max_rows: int = MAX_ROWS, max_cols: int = MAX_COLS, *, notes: bool = True) -> str:
    """A DataFrame as a Markdown table of at most `max_rows` x `max_cols`, the caps stated."""
    precision = _precision()
    n_rows, n_cols = df.shape
    shown = df.iloc[:max_rows, :max_cols]
    header = [cell(df.index.name or "", precision)] + [cell(c, precision) for c in shown.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for index, row in zip(shown.index, shown.itertuples(index=False, name=None), strict=True):
        values = [cell(index, precision), *(cell(v, precision) for v in row)]
        lines.append("| " + " | ".join(values) + " |")
    cut = []
    if n_rows > max_rows:
        cut.append(f"first {max_rows} of {n_rows:,} rows")
    if n_cols > max_cols:
        cut.append(f"first {max_cols} of {n_cols} columns")
    if cut and notes:
        lines.append(f"\n(Table truncated: showing the {' and the '.join(cut)}.)")
    return "\n".join(lines)


def summary(df, name: str = "") -> tuple[str, Sent]:
    """A description of the frame (see the module's doc), and what went."""
    import numpy as np

    n_rows, n_cols = df.shape
    listed = df.iloc[:, :SUMMARY_COLS]
    picked = np.sort(np.random.default_rng(0).choice(n_rows, size=min(SAMPLE_ROWS, n_rows),
                                                     replace=False)) if n_rows else []
    sample = df.iloc[picked]
    more = f" (the first {SUMMARY_COLS} of {n_cols} are described)" if n_cols > SUMMARY_COLS else ""
    parts = [
        f"(A summary of a DataFrame of {n_rows:,} rows × {n_cols:,} columns, not its rows: "
        f"each column's dtype and missing values, describe(), and {len(sample)} rows drawn at "
        f"random.)",
        f"Columns{more}:",
        table(_columns(listed), max_rows=SUMMARY_COLS, max_cols=3),
    ]
    described = _describe(listed)
    if described is not None:
        parts += ["describe():", table(described, max_rows=SUMMARY_COLS, max_cols=12, notes=False)]
    parts += [f"{len(sample)} sample rows:", table(sample)]
    sent = Sent(name, "summary", df.shape, list(listed.columns), list(sample.index))
    return "\n\n".join(parts), sent


def shown_by_repr(df) -> list:
    """The labels of the rows pandas' own text shows (its head and tail past
    ``display.max_rows``)."""
    import pandas as pd

    most, least = pd.get_option("display.max_rows"), pd.get_option("display.min_rows")
    if most is None or len(df) <= most:
        return list(df.index)
    half = max(1, (least or most) // 2)
    return list(df.index[:half]) + list(df.index[-half:])


def _columns(df):
    """One row per column: its dtype and how many values are missing."""
    import pandas as pd

    return pd.DataFrame({"dtype": [str(t) for t in df.dtypes],
                         "missing": df.isna().sum().to_numpy()},
                        index=pd.Index([str(c) for c in df.columns], name="column"))


def _describe(df):
    """``describe()`` with one row per column (None when nothing can be described)."""
    if not len(df.columns):
        return None
    try:
        described = df.describe(include="all")
    except (TypeError, ValueError):  # unhashable cells (lists, arrays): numbers only
        numbers = df.select_dtypes("number")
        if not len(numbers.columns):
            return None
        described = numbers.describe()
    described = described.T.dropna(axis=1, how="all").astype(object)
    described.index.name = "column"
    return described.where(described.notna(), "")  # a statistic a column does not have: blank


def _precision() -> int:
    import pandas as pd

    return int(pd.get_option("display.precision"))


def cell(value: Any, precision: int = 6) -> str:
    """One table cell: floats at `precision`, on one line, pipes escaped, cut at `MAX_CELL`."""
    text = " ".join(number(value, precision).split()).replace("|", "\\|")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def number(value: Any, precision: int = 6) -> str:
    """A float at `precision` decimals (trailing zeros dropped), tiny and huge ones in
    scientific notation; anything else as ``str``."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, np.floating)):
        return str(value)
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return str(float(value))
    magnitude = abs(float(value))
    if magnitude and (magnitude < 10.0 ** -precision or magnitude >= 1e16):
        return np.format_float_scientific(value, precision=precision, unique=True, trim="-")
    return np.format_float_positional(value, precision=precision, unique=True, fractional=True,
                                      trim="-")
