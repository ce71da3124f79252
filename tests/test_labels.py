"""df.mistral.classify, filter and moderate, and %mistral moderate: constrained answers, masks,
moderation columns, failed rows NA with their reasons, packing and batch."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

import mistral_magic
from mistral_magic.errors import BudgetExceeded, ConfigError, StructuredOutputError
from mistral_magic.rows.labels import Classification, Condition

CHAT = "/v1/chat/completions"
MODERATIONS = "/v1/moderations"
LABELS = ["bug", "feature", "question", "refund"]
V2 = ["sexual", "hate_and_discrimination", "violence_and_threats", "dangerous", "criminal",
      "selfharm", "health", "financial", "law", "pii", "jailbreaking"]
TICKETS = pd.DataFrame({"text": [
    "Bug: the app crashes when I upload a photo",
    "Feature request: please add a dark mode",
    "Quick question: how do I reset my password?",
    "My parcel arrived broken, I want a refund.",
    "I do not want a refund, just a new lid for the kettle",
    "Fix this now or I will kill you",
]}, index=[f"t{i}" for i in range(6)])


@pytest.fixture
def session(ip):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    return mistral_magic.session()


def test_classify_answers_with_the_labels_only(session):
    kind = TICKETS.mistral.classify("text", labels=LABELS, progress=False)
    assert isinstance(kind.dtype, pd.CategoricalDtype) and list(kind.cat.categories) == LABELS
    assert list(kind.index) == list(TICKETS.index) and kind.name == "label"
    assert kind.tolist()[:4] == ["bug", "feature", "question", "refund"]
    assert set(kind.dropna()) <= set(LABELS) and kind.attrs["_error"] == {}
    records = session.ledger.records
    assert len(records) == 6 and {r.kind for r in records} == {"classify"}


# Labels of a few words, and one of twenty tokens: the answer's limit must fit the longest.
SENTENCES = ["billing: charged twice for the same monthly subscription",
             "complaint about a late delivery, a damaged parcel and a courier who never rang the bell",
             "bug", "question"]
COMPLAINTS = pd.DataFrame({"text": [
    "This is a complaint about a late delivery, a damaged parcel and a courier who never rang the bell.",
    "billing: charged twice for the same monthly subscription, in March",
    "A bug: the app crashes on start",
    "A question: do you ship to Norway?",
]}, index=["long", "billing", "bug", "question"])


@pytest.mark.parametrize("batch", [False, True], ids=["rows", "batch"])
def test_a_label_of_many_words_can_be_the_answer(session, batch):
    kind = COMPLAINTS.mistral.classify("text", labels=SENTENCES, batch=batch, progress=False)
    assert kind.attrs["_error"] == {}
    assert kind.tolist() == [SENTENCES[1], SENTENCES[0], "bug", "question"]
    assert list(kind.cat.categories) == SENTENCES


def test_the_schema_holds_the_labels_and_refuses_others(session):
    job = Classification(session, TICKETS, "text", LABELS)
    request = job.requests[0]
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == LABELS and schema["required"] == ["label"]
    assert request["response_format"]["json_schema"]["strict"] is True
    assert request["temperature"] == 0.0 and request["messages"][-1]["content"] == TICKETS["text"].iloc[0]
    assert job.parse('{"label": "question"}') == {"label": "question"}
    with pytest.raises(StructuredOutputError, match="does not match the schema"):
        job.parse('{"label": "complaint"}')


def test_answers_that_never_fit_are_na_with_their_reasons(session, magic_server):
    magic_server.set_faults({"bad_json_rate": 1.0})
    before = magic_server.request_count(CHAT)
    kind = TICKETS.iloc[:3].mistral.classify("text", labels=LABELS, progress=False)
    assert magic_server.request_count(CHAT) - before == 6  # each row asked, then re-asked once
    assert kind.isna().all() and list(kind.attrs["_error"]) == ["t0", "t1", "t2"]
    assert all("not valid JSON" in reason for reason in kind.attrs["_error"].values())


@pytest.mark.parametrize("labels, words", [
    ("bug", "labels must be a list of texts"),
    (["bug"], "two or more different"),
    (["bug", "bug"], "two or more different"),
    (["bug", " "], "two or more different"),
])
def test_labels_that_cannot_classify_are_refused(session, labels, words):
    with pytest.raises(ConfigError, match=words):
        TICKETS.mistral.classify("text", labels=labels)


def test_the_first_argument_is_a_column(session, magic_server):
    before = magic_server.request_count()
    for call in (lambda: TICKETS.mistral.classify("Classify {text}", labels=LABELS),
                 lambda: TICKETS.mistral.moderate("body"),
                 lambda: TICKETS.mistral.filter("mentions a refund", column="body")):
        with pytest.raises(ConfigError, match="is not one of the DataFrame's columns"):
            call()
    assert magic_server.request_count() == before


def test_filter_is_a_boolean_mask(session):
    refund = TICKETS.mistral.filter("mentions a refund", column="text", progress=False)
    assert str(refund.dtype) == "boolean" and refund.name == "mentions_a_refund"
    assert refund.tolist() == [False, False, False, True, False, False]  # "do not want": no
    assert list(TICKETS[refund].index) == ["t3"]
    request = Condition(session, TICKETS, "text", "mentions a refund").requests[0]
    field = request["response_format"]["json_schema"]["schema"]["properties"]["mentions_a_refund"]
    assert field == {"type": "boolean", "description": "mentions a refund"}


def test_filter_rows_that_fail_are_na(session, magic_server):
    df = pd.DataFrame({"text": ["I want a refund", None, "My refund, please"]}, index=[10, 20, 30])
    magic_server.set_faults({"error_status": 500, "error_on_nth": [1]})
    mask = df.mistral.filter("mentions a refund", column="text", concurrency=1, progress=False)
    assert mask.isna().tolist() == [True, True, False] and mask[30]
    assert "500" in mask.attrs["_error"][10] and "column 'text' is missing" in mask.attrs["_error"][20]
    assert list(df[mask.fillna(False)].index) == [30]


def test_moderate_scores_every_category(session, magic_server):
    before = magic_server.request_count(MODERATIONS)
    scores = TICKETS.mistral.moderate("text", progress=False)
    assert magic_server.request_count(MODERATIONS) - before == 1  # six texts, one request
    assert list(scores.columns) == [*V2, "flagged", "flagged_for", "_error"]
    assert list(scores.index) == list(TICKETS.index) and scores["_error"].isna().all()
    assert scores["flagged"].tolist() == [False] * 5 + [True]
    assert scores.loc["t5", "flagged_for"] == "violence_and_threats"
    assert scores.loc["t5", "violence_and_threats"] >= 0.85 > scores.loc["t0", "violence_and_threats"]
    assert str(scores["flagged"].dtype) == "boolean" and scores[V2].dtypes.eq("float64").all()
    (record,) = session.ledger.records
    assert record.kind == "moderate" and record.model == "mistral-moderation-latest"
    assert record.cost == 0  # listed as free


def test_moderation_packs_64_texts_a_request_and_names_the_models_categories(session, magic_server):
    df = pd.DataFrame({"text": [f"hello number {i}" for i in range(70)] + [None]})
    before = magic_server.request_count(MODERATIONS)
    scores = df.mistral.moderate("text", model="mistral-moderation-2411", progress=False)
    assert magic_server.request_count(MODERATIONS) - before == 2
    assert "dangerous_and_criminal_content" in scores.columns and "jailbreaking" not in scores.columns
    assert scores["_error"].notna().tolist() == [False] * 70 + [True]
    assert scores["flagged"].isna().tolist() == [False] * 70 + [True]


def test_moderate_and_classify_through_the_batch_api(session):
    scores = TICKETS.mistral.moderate("text", batch=True, progress=False)
    assert scores["flagged"].tolist() == [False] * 5 + [True] and scores["_error"].isna().all()
    kind = TICKETS.mistral.classify("text", labels=LABELS, batch=True, progress=False)
    assert kind.tolist()[:4] == ["bug", "feature", "question", "refund"]
    assert {r.kind for r in session.ledger.records} == {"batch"}


def test_moderate_command_is_a_small_table(ip, session):
    table = ip.run_line_magic("mistral", "moderate I will kill you")
    assert list(table.columns) == ["score", "flagged"] and table.index.name == "category"
    assert sorted(table.index) == sorted(V2)
    assert table.index[0] == "violence_and_threats" and table["flagged"].tolist() == [True] + [False] * 10
    with pytest.raises(UsageError, match="needs text"):
        ip.run_line_magic("mistral", "moderate   ")


def test_labels_respect_the_budget(session, magic_server):
    session.settings.budget_usd = 1e-6
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded, match="classifying 6 rows needs at least"):
        TICKETS.mistral.classify("text", labels=LABELS, progress=False)
    assert magic_server.request_count() == before
