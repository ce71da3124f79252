"""Embeddings by signed feature hashing: deterministic, and texts that share words land close.

Features of a text: its words (lower-cased and lightly stemmed, so "refund" and
"refunds" meet; stopwords weigh a quarter), the character 3- and 4-grams of each word
(so spelling variants and shared roots overlap) and adjacent word pairs (so word
order counts a little). Each feature adds ±weight to one hashed slot per band; the
bands are nested (8, 8, 16, 32, ... dimensions up to the model's maximum), each
normalised and weighted by its size. That makes the vector Matryoshka-like, as
Codestral Embed's is documented to be: its first n dimensions, renormalised, are the
`output_dimension=n` embedding. Cosine similarity then tracks shared words and word
pieces: near-duplicates score above 0.9, paraphrases that share content words score
clearly above unrelated texts, and unrelated texts stay near 0.

The hash is salted with the model, so two embedding models give unrelated spaces.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from typing import TYPE_CHECKING

from . import words

if TYPE_CHECKING:
    import numpy as np

_WORD = re.compile(r"\w+")
_SUFFIXES = ("ations", "ation", "ments", "ment", "ingly", "ings", "ing", "edly", "ies", "ied", "ed", "es", "ly", "s")
WORD_WEIGHT = 1.0
STOPWORD_WEIGHT = 0.25
GRAM_WEIGHT = 0.6  # shared by a word's n-grams (divided by the square root of their count)
PAIR_WEIGHT = 0.4


def bands(dims: int) -> list[tuple[int, int]]:
    """The nested bands [0, 8), [8, 16), [16, 32), ... up to `dims`."""
    edges = [0, 8]
    while edges[-1] * 2 < dims:
        edges.append(edges[-1] * 2)
    edges.append(dims)
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def features(text: str) -> dict[str, float]:
    """The weighted features of a text."""
    found: dict[str, float] = {}
    tokens = _WORD.findall(text.lower())
    stems = [stem(t) for t in tokens]
    for token, root in zip(tokens, stems, strict=True):
        weight = STOPWORD_WEIGHT if token in words.STOPWORDS else WORD_WEIGHT
        found["w:" + root] = found.get("w:" + root, 0.0) + weight
        padded = f"<{token}>"
        grams = [padded[i : i + n] for n in (3, 4) for i in range(len(padded) - n + 1)]
        share = GRAM_WEIGHT * weight / math.sqrt(len(grams)) if grams else 0.0
        for gram in grams:
            found["g:" + gram] = found.get("g:" + gram, 0.0) + share
    content = [s for t, s in zip(tokens, stems, strict=True) if t not in words.STOPWORDS]
    for a, b in zip(content, content[1:], strict=False):
        key = f"p:{a}_{b}"
        found[key] = found.get(key, 0.0) + PAIR_WEIGHT
    return found


@functools.lru_cache(maxsize=262144)
def _slots(salt: str, feature: str, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The slot (absolute index) and sign of a feature in each band."""
    import numpy as np  # here, not at import: the server starts with the first cell

    digest = hashlib.blake2b(f"{salt}\x1f{feature}".encode(), digest_size=64).digest()
    spans = bands(dims)
    index = np.empty(len(spans), dtype=np.int64)
    sign = np.empty(len(spans), dtype=np.float64)
    for n, (start, end) in enumerate(spans):
        value = int.from_bytes(digest[n * 4 : n * 4 + 4], "little")
        index[n] = start + (value >> 1) % (end - start)
        sign[n] = 1.0 if value & 1 else -1.0
    return index, sign


def vector(text: str, dims: int, full: int | None = None, salt: str = "") -> list[float]:
    """The unit-length embedding of `text`: the first `dims` of a `full`-dimensional vector, renormalised."""
    import numpy as np

    full = max(full or dims, dims)
    out = np.zeros(full)
    for feature, weight in features(text).items():
        index, sign = _slots(salt, feature, full)
        np.add.at(out, index, sign * weight)
    for start, end in bands(full):
        band = out[start:end]
        norm = float(np.linalg.norm(band))
        if norm:
            band *= math.sqrt((end - start) / full) / norm
    head = out[:dims]
    norm = float(np.linalg.norm(head))
    if norm == 0:
        # An empty text still needs a unit vector: a fixed direction.
        head = np.zeros(dims)
        head[0] = 1.0
        return head.tolist()
    return np.round(head / norm, 7).tolist()


def encoded(values: list[float] | list[int], dtype: str) -> str:
    """`encoding_format: base64`: the values' bytes, little-endian, as OpenAI-style clients decode them
    (float32 for floats, one byte each for the int8/uint8/binary/ubinary forms)."""
    import base64

    import numpy as np

    kind = {"float": "<f4", "int8": "i1", "binary": "i1"}.get(dtype, "u1")
    return base64.b64encode(np.asarray(values).astype(kind).tobytes()).decode("ascii")


def quantise(values: list[float], dtype: str) -> list[float] | list[int]:
    """The output_dtype forms: int8/uint8 scale to bytes, binary/ubinary pack sign bits (8 a byte)."""
    if dtype == "float":
        return values
    import numpy as np

    array = np.asarray(values)
    if dtype == "int8":
        return np.clip(np.rint(array * 127), -128, 127).astype(int).tolist()
    if dtype == "uint8":
        return np.clip(np.rint((array + 1) * 127.5), 0, 255).astype(int).tolist()
    packed = np.packbits(array > 0).astype(int)
    return (packed - 128 if dtype == "binary" else packed).tolist()
