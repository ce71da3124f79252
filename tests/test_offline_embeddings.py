"""Offline embeddings: paraphrases closer than unrelated texts, near-duplicates above 0.9, Codestral's options."""

from __future__ import annotations

import itertools
import math

import httpx
import numpy as np
import pytest
from mistralai.client import errors

# Support tickets: each pair says the same thing in other words (sharing some content words).
PARAPHRASES = [
    ("How do I reset my password?", "I forgot my password and need to reset it"),
    ("The delivery arrived late and the box was damaged", "My package was delivered late and damaged"),
    ("I want a refund for my order", "Please refund my order, I want my money back"),
    ("The app crashes when I upload a photo", "Uploading a photo makes the app crash"),
    ("Can I change my shipping address?", "How do I update the shipping address on my order?"),
]
NEAR_DUPLICATES = [
    ("My order arrived damaged, I want a refund.", "My order arrived damaged and I want a refund"),
    ("The app crashes when I upload a photo", "The app crashes when I upload a photo!"),
    ("Where is my parcel? It has been two weeks.", "where is my parcel?? it has been two weeks"),
]


def embed(sdk, texts, model="mistral-embed", **options):
    return np.array([d.embedding for d in sdk.embeddings.create(model=model, inputs=texts, **options).data])


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("model", ["mistral-embed", "codestral-embed"])
def test_each_paraphrase_is_closer_than_every_unrelated_text(sdk, model):
    texts = [t for pair in PARAPHRASES for t in pair]
    vectors = embed(sdk, texts, model)
    for i, (a, b) in enumerate(zip(vectors[::2], vectors[1::2], strict=True)):
        paired = cosine(a, b)
        others = [cosine(a, vectors[j]) for j in range(len(texts)) if j // 2 != i]
        assert paired > max(others) + 0.2, (PARAPHRASES[i], paired, max(others))


def test_near_duplicates_score_above_0_9_and_unrelated_texts_below_0_2(sdk):
    for a, b in NEAR_DUPLICATES:
        assert cosine(*embed(sdk, [a, b])) > 0.9, (a, b)
    singles = [pair[0] for pair in PARAPHRASES]
    vectors = embed(sdk, singles)
    for i, j in itertools.combinations(range(len(singles)), 2):
        assert cosine(vectors[i], vectors[j]) < 0.2, (singles[i], singles[j])


def test_vectors_are_unit_length_deterministic_and_differ_by_model(sdk):
    first, second = embed(sdk, ["same text"]), embed(sdk, ["same text"])
    assert np.array_equal(first, second) and math.isclose(np.linalg.norm(first[0]), 1.0, abs_tol=1e-5)
    assert first.shape == (1, 1024)
    assert embed(sdk, ["same text"], "codestral-embed").shape == (1, 1536)
    empty = embed(sdk, [""])[0]
    assert math.isclose(np.linalg.norm(empty), 1.0)


def test_codestral_dimensions_are_nested_prefixes(sdk):
    text = ["def merge(left, right): return sorted(left + right)"]
    full = embed(sdk, text, "codestral-embed", output_dimension=3072)[0]
    for dims in (8, 100, 256, 1536):
        small = embed(sdk, text, "codestral-embed", output_dimension=dims)[0]
        head = full[:dims] / np.linalg.norm(full[:dims])
        assert small.shape == (dims,) and np.allclose(small, head, atol=1e-6), dims


@pytest.mark.parametrize("dtype, length, low, high", [
    ("int8", 100, -128, 127), ("uint8", 100, 0, 255), ("binary", 13, -128, 127), ("ubinary", 13, 0, 255)])
def test_codestral_output_dtypes(sdk, dtype, length, low, high):
    values = sdk.embeddings.create(model="codestral-embed", inputs=["bits"], output_dimension=100,
                                   output_dtype=dtype).data[0].embedding
    assert len(values) == length and all(low <= v <= high and float(v).is_integer() for v in values)


def test_binary_packs_the_signs_of_the_float_vector(sdk):
    floats = embed(sdk, ["signs"], "codestral-embed", output_dimension=16)[0]
    packed = sdk.embeddings.create(model="codestral-embed", inputs=["signs"], output_dimension=16,
                                   output_dtype="ubinary").data[0].embedding
    assert [int(v) for v in packed] == list(np.packbits(floats > 0))


@pytest.mark.parametrize("options, words", [
    ({"output_dimension": 512}, "output_dimension is not available for mistral-embed"),
    ({"output_dtype": "int8"}, "output_dtype is not available for mistral-embed"),
])
def test_mistral_embed_has_no_dimension_or_dtype_options(sdk, options, words):
    with pytest.raises(errors.SDKError) as caught:
        sdk.embeddings.create(model="mistral-embed", inputs=["x"], **options)
    assert caught.value.status_code == 400 and words in caught.value.body


def test_codestral_dimension_is_bounded(sdk):
    with pytest.raises(errors.SDKError) as caught:
        sdk.embeddings.create(model="codestral-embed", inputs=["x"], output_dimension=4096)
    assert "at most 3072" in caught.value.body


def test_the_hosted_input_limits_hold(offline_server):
    def post(body):
        return httpx.post(offline_server.url + "/v1/embeddings", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {offline_server.api_key}"})

    assert post({"model": "mistral-embed", "input": ["x"] * 512}).status_code == 200
    too_many = post({"model": "mistral-embed", "input": ["x"] * 513})
    assert too_many.status_code == 400 and too_many.json()["code"] == "3210"
    too_long = post({"model": "codestral-embed", "input": ["word " * 8300]})
    assert too_long.status_code == 400 and "maximum context length" in too_long.json()["message"]
    too_much = post({"model": "mistral-embed", "input": ["word " * 4000] * 5})
    assert too_much.status_code == 400 and too_much.json()["message"] == "Too many tokens overall, split into more batches."


def test_base64_embeddings_are_the_float32_bytes_of_the_float_ones(offline_server, sdk):
    import base64

    floats = embed(sdk, ["base64 please"], "codestral-embed", output_dimension=64)[0]
    headers = {"Authorization": f"Bearer {offline_server.api_key}"}
    body = {"model": "codestral-embed", "input": ["base64 please"], "output_dimension": 64,
            "encoding_format": "base64"}
    packed = httpx.post(offline_server.url + "/v1/embeddings", json=body, headers=headers, timeout=30).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert np.allclose(np.frombuffer(raw, dtype="<f4"), floats, atol=1e-7)
    signs = httpx.post(offline_server.url + "/v1/embeddings", json={**body, "output_dtype": "int8"},
                       headers=headers, timeout=30).json()["data"][0]["embedding"]
    quantised = embed(sdk, ["base64 please"], "codestral-embed", output_dimension=64, output_dtype="int8")[0]
    assert np.frombuffer(base64.b64decode(signs), dtype="i1").tolist() == quantised.tolist()
