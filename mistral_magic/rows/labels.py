"""Labels, yes/no questions and moderation scores for a column of texts, one row job each.

    kind = tickets.mistral.classify("text", labels=["bug", "feature", "question"])
    refund = tickets.mistral.filter("mentions a refund", column="text")
    tickets[refund.fillna(False)]
    scores = tickets.mistral.moderate("text")
    %mistral moderate I will find you and hurt you

- `classify` asks chat for ``{"label": ...}`` under a strict JSON Schema whose label
  is an ``enum`` of the labels, so an answer outside them does not validate (and is
  asked again, ``MistralMagics.reasks`` times). The result is a pandas categorical
  Series named "label", its categories the labels in their order, aligned to the index.
- `filter` asks chat for one boolean, under a strict JSON Schema whose one field is
  named after the condition (``mentions_a_refund``) and described by it. The result is
  a nullable boolean Series (dtype "boolean") named after the field, to use as a mask
  (``df[mask.fillna(False)]``: pandas refuses a mask holding NA).
- Both ask at temperature 0 by default (a label should not change by chance) with a
  small ``max_tokens``, and their failed rows are NA: ``series.attrs["_error"]`` is a
  dict of index label → the reason, for the rows that failed (empty when none did).
- `moderate` sends the texts to ``classifiers.moderate`` (mistral-moderation-latest
  unless `model`), up to `MODERATION_ROWS` texts a request; it returns a DataFrame
  aligned to the index with one score column per category of the model (floats, 0 to
  1), `flagged` (boolean: any category flagged), `flagged_for` (the flagged categories,
  comma-separated) and `_error` (None on success).
- `moderation_table` is ``%mistral moderate TEXT``: one row per category, its score
  and whether it is flagged, highest score first.

Each is a `rows.job.RowJob`, so each gets the row engine's concurrency, rate limits,
budget, cache and resume, progress, interrupts and ``batch=True``.
"""

from __future__ import annotations

import re

from ..errors import ConfigError, StructuredOutputError
from .job import Reply, RowJob
from .packed import PackedTexts, hosted_share, require_column

MODERATION_MODEL = "mistral-moderation-latest"
MODERATION_ROWS = 64  # the API states no per-request limit for moderation: a modest pack
MODERATION_TOKENS = 32_768
ANSWER_SLACK = 16  # answer tokens beyond the JSON's own words: braces, quotes, a space


class Choice(RowJob):
    """A chat row job that answers one JSON field under a strict schema (`classify`, `filter`)."""

    field = "label"

    def __init__(self, session, df, column: str, schema: dict, system: str, *, method: str,
                 model: str | None = None, temperature: float | None = 0.0, seed: int | None = None):
        from ..money.tokens import count_text
        from ..structured.schema import SchemaSpec

        require_column(df, column, method)
        self.spec = SchemaSpec({"type": "object", "properties": {self.field: schema},
                                "required": [self.field], "additionalProperties": False},
                               name=method)
        self.system = system
        # The whole answer is {"field": value}: its words plus a little slack.
        values = [str(v) for v in schema.get("enum", ["false"])]
        self.options = {"temperature": temperature, "seed": seed,
                        "max_tokens": ANSWER_SLACK + count_text(self.field)
                        + max(count_text(v) for v in values)}
        super().__init__(session, df, column, model=model)

    def request(self, text: str) -> dict:
        from ..core import chat_request

        return chat_request(
            self.model, [{"role": "system", "content": self.system}, {"role": "user", "content": text}],
            response_format=self.spec.response_format(), **self.options)

    def parse(self, text: str) -> dict:
        return self.spec.parse(text)[0]


class Classification(Choice):
    """`classify`'s rows: one label each, from the labels only."""

    kind, verb = "classify", "Classifying"

    def __init__(self, session, df, column: str, labels, **options):
        self.labels = _labels(labels)
        system = ("Classify the user's text with exactly one of these labels: "
                  + ", ".join(self.labels) + '. Answer only with JSON: {"label": "<one of the labels>"}.')
        super().__init__(session, df, column, {"type": "string", "enum": self.labels}, system,
                         method="classify", **options)

    def frame(self, records, index):
        import pandas as pd

        values = pd.Categorical([r["label"] if r else None for r in records], categories=self.labels)
        return pd.DataFrame({"label": values}, index=index)


class Condition(Choice):
    """`filter`'s rows: true or false, whether the text meets the condition."""

    kind, verb = "filter", "Filtering"

    def __init__(self, session, df, column: str, condition: str, **options):
        if not isinstance(condition, str) or not condition.strip():
            raise ConfigError('filter needs a condition, e.g. df.mistral.filter("mentions a refund", '
                              'column="text")')
        self.field = field_name(condition)
        system = (f"Decide whether the user's text meets this condition: {condition.strip()}. "
                  f'Answer only with JSON: {{"{self.field}": true}} if it does, '
                  f'{{"{self.field}": false}} if it does not.')
        super().__init__(session, df, column, {"type": "boolean", "description": condition.strip()},
                         system, method="filter", **options)

    def frame(self, records, index):
        import pandas as pd

        values = pd.array([r[self.field] if r else None for r in records], dtype="boolean")
        return pd.DataFrame({self.field: values}, index=index)


def field_name(condition: str) -> str:
    """A JSON field named after a condition: "mentions a refund" → "mentions_a_refund"."""
    name = re.sub(r"\W+", "_", condition.lower()).strip("_")[:48].rstrip("_")
    return name if name and not name[0].isdigit() else f"meets_{name}".rstrip("_")


def _labels(labels) -> list[str]:
    if isinstance(labels, str) or not hasattr(labels, "__iter__"):
        raise ConfigError(f"labels must be a list of texts, got {labels!r}; e.g. "
                          'labels=["bug", "feature", "question"]')
    found = [str(label).strip() for label in labels]
    if len(found) < 2 or not all(found) or len(set(found)) != len(found):
        raise ConfigError(f"labels must be two or more different, non-empty texts, got {labels!r}; "
                          'e.g. labels=["bug", "feature", "question"]')
    return found


def as_series(out, field: str):
    """The job's one column as a Series, its failed rows' reasons in ``attrs["_error"]``."""
    series = out[field].copy()
    failed = out["_error"].notna()
    series.attrs = {**out.attrs,
                    "_error": dict(zip(out.index[failed], out["_error"][failed], strict=True))}
    return series


def classify(engine, df, column: str, labels, *, batch: bool = False, preview=None, **options):
    """`df.mistral.classify`: a categorical Series of the labels, aligned to the index."""
    job = Classification(engine.session, df, column, labels, **options)
    return as_series(engine.run(job, batch=batch, preview=preview), "label")


def filter_rows(engine, df, condition: str, column: str, *, batch: bool = False, preview=None,
                **options):
    """`df.mistral.filter`: a nullable boolean Series, aligned to the index."""
    job = Condition(engine.session, df, column, condition, **options)
    return as_series(engine.run(job, batch=batch, preview=preview), job.field)


# -- moderation ------------------------------------------------------------------------------


class Moderation(PackedTexts):
    """`moderate`'s rows: each text's score per category, several texts a request."""

    kind, verb = "moderate", "Moderating"
    rows_per_call = MODERATION_ROWS
    batch_endpoint = "/v1/moderations"

    def __init__(self, session, df, column: str, *, model: str | None = None):
        model = model or MODERATION_MODEL
        self.input_limit = session.prices.context_length(model)
        self.tokens_per_call = hosted_share(session, MODERATION_TOKENS)
        super().__init__(session, df, column, model=model, method="moderate")

    async def send(self, client, request: dict, retries) -> Reply:
        response = await client.classifiers.moderate_async(
            model=request["model"], inputs=request["input"], retries=retries)
        # The SDK's ModerationResponse drops the usage the API sends: then the count stands.
        usage = getattr(response, "usage", None)
        return Reply([r.model_dump() for r in response.results],
                     getattr(usage, "prompt_tokens", None))

    def batch_reply(self, body: dict) -> Reply:
        return Reply([body["results"][0]], (body.get("usage") or {}).get("prompt_tokens"))

    def parse(self, result) -> dict:
        try:
            scores = {str(c): float(s) for c, s in result["category_scores"].items()}
            flagged = [str(c) for c, on in result["categories"].items() if on]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StructuredOutputError(f"the server sent a moderation result without "
                                        f"category scores ({exc!r})") from None
        return {"scores": scores, "flagged": flagged}

    def frame(self, records, index):
        import numpy as np
        import pandas as pd

        categories = list(dict.fromkeys(c for r in records if r for c in r["scores"]))
        columns: dict = {c: pd.array([r["scores"].get(c, np.nan) if r else np.nan for r in records],
                                     dtype="float64") for c in categories}
        columns["flagged"] = pd.array([bool(r["flagged"]) if r else None for r in records],
                                      dtype="boolean")
        columns["flagged_for"] = pd.array([", ".join(r["flagged"]) if r else None for r in records],
                                          dtype=object)
        return pd.DataFrame(columns, index=index)


def moderate(engine, df, column: str, *, model: str | None = None, batch: bool = False,
             preview: int | None = None):
    """`df.mistral.moderate`: one score column per category, `flagged`, `flagged_for`, `_error`."""
    return engine.run(Moderation(engine.session, df, column, model=model), batch=batch,
                      preview=preview)


def moderation_table(engine, text: str, model: str | None = None):
    """``%mistral moderate TEXT``: one row per category (score, flagged), highest score first."""
    import pandas as pd

    from ..errors import APIError

    out = moderate(engine, pd.DataFrame({"text": [text]}, dtype=object), "text", model=model)
    row = out.iloc[0]
    if row["_error"] is not None:
        raise APIError(row["_error"])
    flagged = set(row["flagged_for"].split(", ")) if row["flagged_for"] else set()
    scores = row.drop(["flagged", "flagged_for", "_error"]).astype(float)
    table = pd.DataFrame({"score": scores, "flagged": [c in flagged for c in scores.index]})
    table.index.name = "category"
    return table.sort_values("score", ascending=False, kind="stable")
