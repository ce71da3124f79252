"""Embeddings of a text column, and what vectors are for: search and near-duplicates.

    tickets = tickets.mistral.embed("text")                     # + a text_embedding column
    tickets.mistral.search("refund for a damaged order", k=3)   # the 3 closest rows + score
    tickets.mistral.dedup(threshold=0.9)                        # + dup_group, duplicate

Embedding (`Embedding`, a row job run by the row engine)
- One request carries as many rows as the API takes: at most 512 texts and 16,384
  tokens, packed greedily in order (`packed.PackedTexts`); requests run concurrently
  under the engine's rate limits and budget, finished rows are cached, so running it
  again sends only the rows not done. ``batch=True`` sends one batch line per row.
- A text past the model's 8,192 tokens is that row's `_error`; it fails no request.
- The vectors go in ``f"{column}_embedding"``, one NumPy array per row (NA where a
  row has none; `_error` says why), typed by `dtype` (codestral-embed's
  ``output_dtype``): None or "float" → float32; "int8" → int8; "uint8" → uint8;
  "binary" and "ubinary" → bool, one per dimension (the API packs eight sign bits a
  byte, less 128 for "binary"; unpacked here, so ``(a != b).sum()`` is the Hamming
  distance).
  `dimension` is codestral-embed's ``output_dimension`` (mistral-embed has 1,024).
- ``frame.attrs["mistral_embeddings"]`` remembers each vector column's model,
  dimension and dtype, so that `search` embeds its query the same way.
- The vectors are written once, each reply's straight into one array made for the job (a
  row per row of the frame), whose rows the column's values are (views, no copies). A
  finished row is cached as the base64 of its vector's bytes (plain JSON for a persistent
  store), written with its request's other rows in one transaction, made as it is written
  and not kept.

Search and dedup
- `column` names a vector column, or a text column whose ``{column}_embedding`` is
  used when present and made otherwise (through the engine, so cached vectors are
  reused and only the rest is sent); with no `column`, the frame's one vector column,
  else its one text column.
- Similarity is the cosine, by matrix products in float32: int8 as it is, uint8
  centred on 127.5, bits as ±1. Rows without a vector take no part.
- `search` returns the `k` best rows, best first, with a `score` column.
- `dedup` adds `dup_group` (Int64: rows whose similarity reaches `threshold` share a
  group, also through other rows; groups numbered in order of first appearance, a row
  alone has a group of its own; NA without a vector) and `duplicate` (boolean: every
  row of a group but its first, so ``df[~out["duplicate"]]`` keeps one of each). It
  compares rows in blocks of at most `BLOCK_CELLS` similarities and merges groups
  block by block (SciPy's connected components), so memory stays bounded at 100,000 rows.
"""

from __future__ import annotations

import base64

import numpy as np

from ..errors import APIError, ConfigError, StructuredOutputError
from .job import Reply
from .packed import PackedTexts, hosted_share

DEFAULT_MODEL = "mistral-embed"
MAX_INPUTS = 512
MAX_TOKENS = 16_384
MAX_INPUT_TOKENS = 8_192
DIMENSIONS = 1024  # mistral-embed's (a model's own when `dimension` does not say)
# What one number of a reply in flight holds: its JSON text (the API writes a float in
# about 16 characters) and, while it is parsed, the SDK's decoded copy of that text; the
# array keeps 4 bytes of it. (Parsed, it is a Python float for a moment: one reply at a
# time, on the loop's thread.)
REPLY_BYTES = 32
VECTOR_DTYPES = {"float": "float32", "int8": "int8", "uint8": "uint8", "binary": "bool",
                 "ubinary": "bool"}
ATTRS = "mistral_embeddings"
IN_ARRAY = object()  # a row's record when its vector is in the job's array
BLOCK_CELLS = 1 << 24  # similarities computed at once: 64 MB of float32
TIE = 1e-6  # float32 rounding: a vector's cosine with its own copy may fall just below 1


class Embedding(PackedTexts):
    """`embed`'s rows: texts in, one vector each (packed into as few requests as the limits allow)."""

    kind, verb = "embed", "Embedding"
    rows_per_call = MAX_INPUTS
    input_limit = MAX_INPUT_TOKENS
    batch_endpoint = "/v1/embeddings"

    def __init__(self, session, df, column: str, *, model: str | None = None,
                 dimension: int | None = None, dtype: str | None = None):
        if dtype is not None and dtype not in VECTOR_DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(VECTOR_DTYPES)} (or None for "
                              f"float), got {dtype!r}")
        if dimension is not None and (isinstance(dimension, bool) or not isinstance(dimension, int)
                                      or dimension < 1):
            raise ConfigError(f"dimension must be a whole number of at least 1 (or None for the "
                              f"model's own), got {dimension!r}; e.g. dimension=256")
        self.dimension, self.dtype = dimension, dtype or "float"
        self.name = f"{column}_embedding"
        self.options = {key: value for key, value in (("output_dimension", dimension),
                                                      ("output_dtype", dtype)) if value is not None}
        self.tokens_per_call = hosted_share(session, MAX_TOKENS)
        self._vectors: np.ndarray | None = None
        super().__init__(session, df, column, model=model or DEFAULT_MODEL, method="embed")

    async def send(self, client, request: dict, retries) -> Reply:
        response = await client.embeddings.create_async(
            model=request["model"], inputs=request["input"], retries=retries, **self.options)
        data = sorted(response.data, key=lambda d: d.index or 0)
        return Reply([d.embedding for d in data], response.usage.prompt_tokens)

    def calls_at_once(self, concurrency: int, units: list[list[int]]) -> int:
        """At most as many calls at once as keep the replies in flight (`REPLY_BYTES` a
        number) within the vectors' own bytes, so that the job's memory stays within about
        twice its result: 2 for 10,000 texts of mistral-embed, the engine's 8 from about
        33,000; never fewer than two."""
        dimensions = self.dimension or DIMENSIONS
        reply = max(map(len, units), default=1) * dimensions * REPLY_BYTES
        result = len(self.df) * dimensions * np.dtype(VECTOR_DTYPES[self.dtype]).itemsize
        return max(2, min(concurrency, result // reply))

    def batch_reply(self, body: dict) -> Reply:
        return Reply([body["data"][0]["embedding"]], (body.get("usage") or {}).get("prompt_tokens", 0))

    def parse(self, values) -> dict:
        return self.stored({"embedding": self.array(values)}, -1)

    def parse_all(self, values: list, rows: list[int]) -> list:
        # The call's vectors go straight into the job's one array (`matrix`), row by row in
        # place: nothing else is kept per row (the store gets `stored` forms, made as it writes).
        try:
            if self.dtype in ("binary", "ubinary"):  # bits unpacked: a block first
                block = self.block(values)
                self.matrix(block.shape[1], block.dtype)[rows] = block
            else:  # each list of numbers into its row: no copy of the whole reply on the way
                self._into(values, rows)
        except StructuredOutputError:
            return super().parse_all(values, rows)  # row by row: only the bad rows fail
        return [IN_ARRAY] * len(rows)

    def _into(self, values: list, rows: list[int]) -> None:
        first = values[0] if values else None
        if not isinstance(first, list) or not first:
            raise StructuredOutputError("the server sent an embedding that is not a list of numbers")
        dimensions = len(first)
        matrix = self.matrix(dimensions, np.dtype(VECTOR_DTYPES[self.dtype]))
        for row, vector in zip(rows, values, strict=True):
            if not isinstance(vector, list) or len(vector) != dimensions:
                raise StructuredOutputError(f"the server sent embeddings of {dimensions} "
                                            "dimensions and of others in one reply")
            try:
                matrix[row] = vector
            except (TypeError, ValueError, OverflowError) as exc:
                raise StructuredOutputError(f"the server sent an embedding that is not a list "
                                            f"of {self.dtype} numbers ({exc})") from None

    def matrix(self, dimensions: int, dtype) -> np.ndarray:
        """The job's array of vectors, a row per row of the frame, made for the first reply."""
        if self._vectors is None:
            self._vectors = np.empty((len(self.df), dimensions), dtype=dtype)
        if self._vectors.shape[1] != dimensions or self._vectors.dtype != dtype:
            raise StructuredOutputError(f"the server sent embeddings of {dimensions} "
                                        f"dimensions, and {self._vectors.shape[1]} before")
        return self._vectors

    def stored(self, record, row: int) -> dict:
        vector = self._vectors[row] if record is IN_ARRAY else record["embedding"]
        if isinstance(vector, str):
            return record
        return {"embedding": base64.b64encode(vector.tobytes()).decode("ascii")}

    def array(self, values) -> np.ndarray:
        """The API's list of numbers as this job's NumPy vector."""
        array = self.block([values])
        return array.reshape(array.shape[1:])

    def block(self, rows: list) -> np.ndarray:
        """The API's lists of numbers, one a row, as one NumPy array of this job's type."""
        try:
            if self.dtype in ("binary", "ubinary"):
                packed = np.asarray(rows, dtype=np.int16)
                if self.dtype == "binary":  # the bytes less 128, so that they fit an int8
                    packed = packed + 128
                bits = np.unpackbits(packed.astype(np.uint8), axis=-1).astype(bool)
                array = bits[..., : self.dimension or bits.shape[-1]]
            else:
                array = np.asarray(rows, dtype=VECTOR_DTYPES[self.dtype])
        except (TypeError, ValueError, OverflowError) as exc:
            raise StructuredOutputError(f"the server sent an embedding that is not a list of "
                                        f"{self.dtype} numbers ({exc})") from None
        if array.ndim != 2 or not array.shape[1]:
            raise StructuredOutputError(f"the server sent an embedding of shape {array.shape[1:]}")
        return array

    def frame(self, records, index):
        import pandas as pd

        dtype = np.dtype(VECTOR_DTYPES[self.dtype])
        vectors = [None if r is None else self._vectors[i] if r is IN_ARRAY
                   else np.frombuffer(bytearray(base64.b64decode(r["embedding"])), dtype=dtype)
                   for i, r in enumerate(records)]  # vectors made here, and those the store kept
        out = self.df.assign(**{self.name: pd.Series(vectors, index=index, dtype=object)})
        made = {"model": self.model, "dimension": self.dimension, "dtype": self.dtype}
        out.attrs = {**out.attrs, ATTRS: {**out.attrs.get(ATTRS, {}), self.name: made}}
        return out


def embed(engine, df, column: str, *, batch: bool = False, preview: int | None = None, **spec):
    """`df.mistral.embed`: the frame with its ``{column}_embedding`` and `_error` columns."""
    return engine.run(Embedding(engine.session, df, column, **spec), batch=batch, preview=preview)


# -- which vectors ------------------------------------------------------------------------


def holds_vectors(series) -> bool:
    """Whether a column's first value that is not NA is a NumPy array."""
    if series.dtype != object:
        return False
    found = np.flatnonzero(series.notna().to_numpy())
    return bool(found.size) and isinstance(series.iloc[found[0]], np.ndarray)


def _source(df, column: str | None) -> tuple[str | None, str | None]:
    """(the vector column to use, or None; the text column to embed, or None)."""
    if column is not None:
        if column not in df.columns:
            listed = ", ".join(repr(c) for c in df.columns) or "none"
            raise ConfigError(f"column {column!r} is not one of the DataFrame's columns ({listed})")
        if holds_vectors(df[column]):
            return column, None
        made = f"{column}_embedding"
        return (made if made in df.columns and holds_vectors(df[made]) else None), column
    vectors = [c for c in df.columns if holds_vectors(df[c])]
    if len(vectors) == 1:
        return vectors[0], None
    texts = [c for c in df.columns
             if c not in vectors and (df[c].dtype == object or str(df[c].dtype) in ("str", "string"))]
    if not vectors and len(texts) == 1:
        return None, texts[0]
    choices = ", ".join(repr(c) for c in (vectors or texts)) or "none"
    raise ConfigError(f"say which column to compare with column=... (one of: {choices})")


def _vectors(engine, df, column, query, spec) -> tuple:
    """The rows' vectors (an object array, None where a row has none) and the query's."""
    import pandas as pd

    vector_column, text_column = _source(df, column)
    if vector_column is not None:
        made = df.attrs.get(ATTRS, {}).get(vector_column, {})
        spec = {key: value if value is not None else made.get(key) for key, value in spec.items()}
        values = df[vector_column].to_numpy(dtype=object)
        texts = [] if query is None else [query]
    else:
        values = None
        texts = [*df[text_column].tolist(), *([] if query is None else [query])]
    if not texts:
        return values, None
    job = Embedding(engine.session, pd.DataFrame({"text": texts}, dtype=object), "text", **spec)
    out = engine.run(job)
    made = out["text_embedding"].to_numpy(dtype=object)
    if query is None:
        return made, None
    if out["_error"].iloc[-1] is not None:
        raise APIError(f"the query could not be embedded: {out['_error'].iloc[-1]}")
    return (made[:-1] if values is None else values), made[-1]


def _present(values) -> np.ndarray:
    """Positions of the rows that have a vector."""
    import pandas as pd

    return np.flatnonzero(~pd.isna(values))


def unit_rows(vectors) -> np.ndarray:
    """Vectors stacked as float32 rows of length 1 (cosine = dot product): bits as ±1,
    uint8 centred on 127.5, the rest as they are."""
    try:
        block = np.stack(list(vectors))
    except ValueError as exc:
        raise ConfigError(f"the vectors do not all have the same length ({exc}); embed the "
                          "column again with one model, dimension and dtype") from None
    if block.dtype == bool:
        block = block.astype(np.float32) * 2 - 1
    elif block.dtype == np.uint8:
        block = block.astype(np.float32) - 127.5
    else:
        block = block.astype(np.float32, copy=False)  # np.stack made it: ours to change
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    np.divide(block, norms, out=block, where=norms > 0)
    return block


# -- search --------------------------------------------------------------------------------


def search(engine, df, query: str, *, k: int = 10, column: str | None = None, **spec):
    """`df.mistral.search`: the `k` rows closest to `query`, best first, with `score`."""
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("search needs a query: some text, e.g. df.mistral.search(\"refunds\")")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a whole number of at least 1, got {k!r}; e.g. k=5")
    values, target = _vectors(engine, df, column, query, spec)
    scores = similarities(values, target)
    _say_missing(len(values) - int(np.count_nonzero(~np.isnan(scores))))
    ranked = np.flatnonzero(~np.isnan(scores))
    if ranked.size > k:
        ranked = ranked[np.argpartition(-scores[ranked], k - 1)[:k]]
    ranked = ranked[np.argsort(-scores[ranked], kind="stable")]
    return df.iloc[ranked].assign(score=scores[ranked])


def similarities(values, query: np.ndarray) -> np.ndarray:
    """Each row's cosine with `query` (NaN for rows without a vector), a block of rows at a time."""
    scores = np.full(len(values), np.nan)
    present = _present(values)
    target = unit_rows([query])[0]
    if present.size and np.shape(values[present[0]]) != np.shape(query):
        raise ConfigError(
            f"the rows' vectors have {np.size(values[present[0]])} dimensions and the query's "
            f"{np.size(query)}: pass the model=, dimension= and dtype= the column was embedded with")
    step = max(1, BLOCK_CELLS // max(1, target.size))
    for start in range(0, present.size, step):
        rows = present[start:start + step]
        scores[rows] = unit_rows(values[rows]) @ target
    return scores


# -- near-duplicates -------------------------------------------------------------------------


def dedup(engine, df, *, threshold: float = 0.9, column: str | None = None, **spec):
    """`df.mistral.dedup`: the frame with `dup_group` and `duplicate`."""
    import pandas as pd

    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be a cosine above 0 and at most 1, got {threshold!r}; "
                          "e.g. threshold=0.9")
    values, _ = _vectors(engine, df, column, None, spec)
    present = _present(values)
    _say_missing(len(values) - present.size)
    groups = np.full(len(values), -1)
    first = np.zeros(len(values), dtype=bool)
    if present.size:
        labels = components(unit_rows(values[present]), threshold)
        _, firsts, inverse = np.unique(labels, return_index=True, return_inverse=True)
        rank = np.empty(firsts.size, dtype=np.int64)
        rank[np.argsort(firsts)] = np.arange(firsts.size)
        groups[present] = rank[inverse]
        first[present[firsts]] = True
    out = df.copy()
    out["dup_group"] = pd.arrays.IntegerArray(np.maximum(groups, 0), mask=groups < 0)
    out["duplicate"] = pd.array((groups >= 0) & ~first, dtype="boolean")
    return out


def components(rows: np.ndarray, threshold: float) -> np.ndarray:
    """Each row's group: rows joined when their cosine reaches `threshold`, transitively."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(rows)
    labels = np.arange(n)
    step = max(1, BLOCK_CELLS // max(1, n))
    for start in range(0, n, step):
        block = rows[start:start + step] @ rows[start:].T
        left, right = np.nonzero(block >= threshold - TIE)
        left, right = left + start, right + start
        keep = right > left
        if not keep.any():
            continue
        a, b = labels[left[keep]], labels[right[keep]]
        graph = coo_matrix((np.ones(a.size, dtype=bool), (a, b)), shape=(n, n))
        labels = connected_components(graph, directed=False)[1][labels]
    return labels


def _say_missing(count: int) -> None:
    if count:
        from IPython.display import display

        from ..show.render import note

        display(note(f"{count:,} row{'' if count == 1 else 's'} without a vector took no part "
                     "(df.mistral.embed(column)['_error'] says why)."), raw=True)
