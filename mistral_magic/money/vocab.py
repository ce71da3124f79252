"""Tekken's vocabulary on tiktoken, without importing mistral-common.

mistral-common's `Tekkenizer` is a `tiktoken.Encoding` built from the tekken file's
ranks and pattern, with its special tokens kept apart (ids below
``num_special``). Building it through mistral-common costs seconds (its imports pull
in jsonschema, and it decodes all 131k tokens up front); the same encoder built
here from the same file gives the same ids and takes about a tenth of a second.

The ranks are cached in the user's cache directory in a compact form (piece lengths
and the pieces, checked by a SHA-256 and tied to the tekken file's size and mtime),
which loads three times faster than the tekken JSON; an unreadable or stale cache is
rebuilt, and an unwritable cache directory only costs the speed.
"""

from __future__ import annotations

import array
import base64
import hashlib
import importlib.util
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path

#: The tokenizer `MistralTokenizer.v3(is_tekken=True)` loads (the v3 instruct format).
TEKKEN_FILE = "tekken_240718.json"
CACHE_FORMAT = 1

# mistral-common's special tokens for tekken files that do not list their own
# (`Tekkenizer.DEPRECATED_SPECIAL_TOKENS`): the ranks the v3 chat template uses.
DEFAULT_SPECIAL = {"<s>": 1, "</s>": 2, "[INST]": 3, "[/INST]": 4}


class Vocabulary:
    """Plain-text encoding exactly as mistral-common's `Tekkenizer` (special tokens apart)."""

    def __init__(self, ranks: dict[bytes, int], pattern: str, num_special: int,
                 special: dict[str, int], name: str = "tekken"):
        import tiktoken

        self.num_special = num_special
        self.special = special
        self._model = tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks,
                                        special_tokens={})

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (no BOS/EOS), as `Tekkenizer.encode(text, False, False)`."""
        offset = self.num_special
        return [t + offset for t in self._model.encode(text)]

    def count(self, text: str) -> int:
        return len(self._model.encode(text)) if text else 0

    def decode(self, ids: list[int]) -> str:
        """Text of token ids, special tokens dropped (mistral-common's default policy)."""
        offset = self.num_special
        out = []
        for special, group in itertools.groupby(ids, lambda t: t < offset):
            if not special:
                out.append(self._model.decode([t - offset for t in group]))
        return "".join(out)

    def byte_piece(self, token_id: int) -> bytes:
        """The bytes of one token (empty for a special token)."""
        if token_id < self.num_special:
            return b""
        return self._model.decode_single_token_bytes(token_id - self.num_special)


def tekken_path() -> Path:
    """mistral-common's tekken file, found without importing mistral-common."""
    spec = importlib.util.find_spec("mistral_common")
    if spec is None or not spec.submodule_search_locations:
        from ..errors import ConfigError

        raise ConfigError("mistral-common is not installed; pip install mistral-common")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / TEKKEN_FILE


def cache_dir() -> Path:
    """Where the compact vocabulary is kept (the user's cache directory)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("mistral_magic", appauthor=False))


def load(source: Path | None = None, cache: Path | None = None) -> Vocabulary:
    """The vocabulary of `source` (default: the v3 tekken file), from the cache when fresh."""
    source = source or tekken_path()
    cache = cache if cache is not None else cache_dir()
    stat = source.stat()
    key = {"format": CACHE_FORMAT, "source": str(source), "size": stat.st_size,
           "mtime_ns": stat.st_mtime_ns, "byteorder": sys.byteorder}
    cached = cache / f"{source.stem}.v{CACHE_FORMAT}.ranks"
    loaded = _read_cache(cached, key)
    if loaded is None:
        loaded = _read_tekken(source)
        _write_cache(cached, key, *loaded)
    ranks, config = loaded
    return Vocabulary(ranks, config["pattern"], config["num_special"], config["special"],
                      name=source.stem)


def _read_tekken(source: Path) -> tuple[dict[bytes, int], dict]:
    """Ranks and settings from a tekken JSON file, as `Tekkenizer.from_file` reads them."""
    with open(source, encoding="utf-8") as f:
        data = json.load(f)
    config = data["config"]
    num_special = config["default_num_special_tokens"]
    inner = config["default_vocab_size"] - num_special
    ranks: dict[bytes, int] = {}
    for rank, info in enumerate(data["vocab"][:inner]):
        if info["rank"] != rank:
            raise ValueError(f"{source.name}: rank {info['rank']} at position {rank}")
        ranks[base64.b64decode(info["token_bytes"])] = rank
    listed = data.get("special_tokens")
    special = ({t["token_str"]: t["rank"] for t in listed} if listed is not None
               else dict(DEFAULT_SPECIAL))
    return ranks, {"pattern": config["pattern"], "num_special": num_special, "special": special}


def _read_cache(path: Path, key: dict) -> tuple[dict[bytes, int], dict] | None:
    """The cached ranks when the file is whole and made from the same tekken file, else None."""
    try:
        raw = path.read_bytes()
        head, _, body = raw.partition(b"\n")
        header = json.loads(head)
    except (OSError, ValueError):
        return None
    if (not isinstance(header, dict) or {k: header.get(k) for k in key} != key
            or hashlib.sha256(body).hexdigest() != header.get("sha256")
            or not isinstance(header.get("count"), int) or not isinstance(header.get("config"), dict)):
        return None
    count = header["count"]
    if count < 1 or len(body) < 2 * count:
        return None
    lengths = array.array("H")
    lengths.frombytes(body[:2 * count])
    pieces = body[2 * count:]
    ends = list(itertools.accumulate(lengths))
    if len(lengths) != count or not ends or ends[-1] != len(pieces):
        return None
    starts = [0, *ends[:-1]]
    ranks = dict(zip(map(pieces.__getitem__, map(slice, starts, ends)), range(count), strict=True))
    return (ranks, header["config"]) if len(ranks) == count else None


def _write_cache(path: Path, key: dict, ranks: dict[bytes, int], config: dict) -> None:
    """Write the compact form next to others atomically; a cache that cannot be written is skipped."""
    ordered = sorted(ranks, key=ranks.__getitem__)
    try:
        body = array.array("H", map(len, ordered)).tobytes() + b"".join(ordered)
    except OverflowError:  # a piece longer than 64 KiB: this form cannot hold it
        return
    header = {**key, "count": len(ordered), "config": config,
              "sha256": hashlib.sha256(body).hexdigest()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(header).encode() + b"\n" + body)
            os.replace(tmp, path)  # two kernels writing at once: one whole file wins
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass
