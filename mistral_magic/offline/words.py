"""Reading a prompt the cheap way: key words, names, numbers, dates and segments."""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further get give had has have having he her here hers him his how i if in into
    is it its itself just let like make me more most my no nor not now of off on once only or
    other our out over own please same she should show so some such tell than that the their
    them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours using use want need
    write explain describe list give one two three many much each every per via vs etc into
    following text below above answer question""".split()
)

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]*")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)?(?![\w])")
_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DATETIME = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_URL = re.compile(r"https?://[^\s)\"'>]+")
_NAME = re.compile(r"\b[A-Z][a-zà-ÿ]+(?:[ -][A-Z][a-zà-ÿ]+)*\b")


def words(text: str) -> list[str]:
    """All words of the text, in order."""
    return _WORD.findall(text)


def keywords(text: str, limit: int = 6) -> list[str]:
    """The first distinct content words (no stopwords), lower-cased unless capitalised."""
    seen: dict[str, str] = {}
    for word in words(text):
        key = word.lower().strip("'-")
        if len(key) < 3 or key in STOPWORDS or key in seen:
            continue
        seen[key] = word if word[:1].isupper() and not word.isupper() else key
        if len(seen) >= limit:
            break
    return list(seen.values())


def names(text: str) -> list[str]:
    """Capitalised word runs that are not just the first word of a sentence."""
    found: list[str] = []
    for match in _NAME.finditer(text):
        value = match.group(0)
        before = text[: match.start()].rstrip()
        sentence_start = not before or before[-1] in ".!?:\n"
        if sentence_start and value.lower() in STOPWORDS | _COMMON_STARTS:
            continue
        if value not in found:
            found.append(value)
    return found


_COMMON_STARTS = frozenset("""
    hello hi dear thanks thank yes no ok okay sure here there this that these those the
    it its in on at by for from with as an a if when while after before then please extract
    find pull get tell give write return list name save add store register record create send
    book update delete set compute calculate convert multiply plot describe show look check
    compare search fetch call run respond reply answer output format produce provide""".split())


def numbers(text: str) -> list[float]:
    """Numbers written in the text (dates excluded), in order."""
    text = _DATETIME.sub(" ", _DATE.sub(" ", text))
    out = []
    for match in _NUMBER.finditer(text):
        raw = match.group(0).replace(",", ".") if match.group(0).count(",") == 1 else match.group(0)
        try:
            out.append(float(raw.replace(",", "")))
        except ValueError:
            continue
    return out


def dates(text: str) -> list[str]:
    """ISO dates (YYYY-MM-DD) written in the text."""
    return ["-".join(m.groups()) for m in _DATE.finditer(text)]


def datetimes(text: str) -> list[str]:
    return [m.group(0) for m in _DATETIME.finditer(text)]


def emails(text: str) -> list[str]:
    return [found.rstrip(".") for found in _EMAIL.findall(text)]


def urls(text: str) -> list[str]:
    return _URL.findall(text)


def segments(text: str) -> list[str]:
    """Lines, bullets or sentences: the units a list of records is made from."""
    lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    # A prompt's first line is often the instruction ("Extract the people:"), not a record.
    if len(lines) > 2 and lines[0].endswith(":"):
        lines = lines[1:]
    if len(lines) > 1:
        return lines
    sentences = [s.strip() for s in re.split(r"(?<=[.!?;])\s+", text) if s.strip()]
    return sentences or [text.strip()]


def value_after(label: str, text: str) -> str | None:
    """The value written after `label:`, `label is` or `label =` in the text."""
    spoken = re.escape(label.replace("_", " ")).replace(r"\ ", r"[\s_-]+")
    # The value ends at a comma, semicolon or full stop, but not at a decimal point (`temp: -3.5`).
    pattern = rf"\b{spoken}\s*(?::|=|\bis\b|\bwas\b|\bof\b)\s*((?:[^\n,;.]|(?<=\d)\.(?=\d))+)"
    match = re.search(pattern, text, re.IGNORECASE)
    if not match:
        return None
    value = match.group(1).strip().strip("\"'*")
    return value or None


def number_before(label: str, text: str) -> float | None:
    """A number written just before the label or its singular: `4 stars`, `79.99 euros`."""
    word = re.escape(label.replace("_", " ").lower())
    singular = word[:-1] if word.endswith("s") and len(word) > 3 else word
    pattern = rf"(-?\d+(?:[.,]\d+)?)\s*(?:{word}|{singular})\b"
    match = re.search(pattern, text, re.IGNORECASE)
    return float(match.group(1).replace(",", ".")) if match else None


_INSTRUCTION = frozenset(
    "extract pull parse get find list identify return fields field information details "
    "following from read give respond reply json keys key schema output".split()
)


def data_part(text: str) -> str:
    """The text to take values from: an instruction like `Extract the fields from: ...` dropped."""
    match = re.match(r"\s*([^:\n]{3,100}):\s*(\S.*)", text, re.DOTALL)
    if match and set(re.findall(r"[a-z]+", match.group(1).lower())) & _INSTRUCTION:
        return match.group(2)
    return text


def phrase(text: str, max_words: int = 8) -> str:
    """A short, tidy excerpt of the text."""
    found = re.findall(r"\S+", text.strip())
    out = " ".join(found[:max_words]).rstrip(",;:")
    return out + ("…" if len(found) > max_words else "")
