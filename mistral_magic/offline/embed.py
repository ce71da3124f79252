"""Embeddings by signed feature hashing: deterministic, and similar texts land close.

Each lower-cased word adds ±1 to a hashed dimension and each of its character
trigrams adds ±0.3, then the vector is L2-normalised; texts sharing words share
dimensions, so cosine similarity tracks word overlap.
"""

from __future__ import annotations

import hashlib
import math
import re

_WORD = re.compile(r"\w+")
TRIGRAM_WEIGHT = 0.3


def _slot(feature: str, dims: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dims, (1.0 if value >> 63 else -1.0)


def vector(text: str, dims: int) -> list[float]:
    """The unit-length embedding of `text` in `dims` dimensions."""
    out = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        index, sign = _slot("w:" + word, dims)
        out[index] += sign
        padded = f"<{word}>"
        for i in range(len(padded) - 2):
            index, sign = _slot("t:" + padded[i : i + 3], dims)
            out[index] += sign * TRIGRAM_WEIGHT
    norm = math.sqrt(sum(v * v for v in out))
    if norm == 0:
        # An empty text still needs a unit vector: a fixed direction.
        out[0] = 1.0
        return out
    return [round(v / norm, 7) for v in out]


def quantise(values: list[float], dtype: str) -> list[float] | list[int]:
    """The output_dtype forms: int8/uint8 scale to bytes, binary/ubinary pack sign bits."""
    if dtype == "float":
        return values
    if dtype == "int8":
        return [max(-128, min(127, round(v * 127))) for v in values]
    if dtype == "uint8":
        return [max(0, min(255, round((v + 1) * 127.5))) for v in values]
    packed = []
    for i in range(0, len(values), 8):
        byte = 0
        for bit, v in enumerate(values[i : i + 8]):
            if v > 0:
                byte |= 1 << (7 - bit)
        packed.append(byte - 128 if dtype == "binary" else byte)
    return packed

