"""Moderation and classification offline: keyword rules, deterministic, honest about being rules.

Categories are the spec's: `ModerationLLMV2CategoryThresholds` for
mistral-moderation-2603 (sexual, hate_and_discrimination, violence_and_threats,
dangerous, criminal, selfharm, health, financial, law, pii, jailbreaking) and
`ModerationLLMV1CategoryThresholds` for mistral-moderation-2411 (the same, with
dangerous_and_criminal_content in place of dangerous and criminal, and no
jailbreaking). A category's score is a small baseline (below 0.005, from a hash of
the text) unless its rules match; then it is 0.85 for one matching cue, rising
towards 1 with more (`score`). `categories[c]` is true when the score reaches
`FLAGGED` (0.5). Obviously violent, hateful, self-harm, dangerous, criminal, sexual,
jailbreaking or personal-data texts therefore score high, neutral texts low, and the
same text always scores the same. Responses carry an `offline-` id.

`/v1/chat/moderations` scores the last message of each conversation (the hosted
model classifies the last turn in its context). `/v1/classifications` and
`/v1/chat/classifications` answer for the moderation models (the only models with the
classification capability offline; fine-tuned classifiers do not exist here) with one
target, `moderation`, scored per category as above.
"""

from __future__ import annotations

import hashlib
import re

FLAGGED = 0.5
V2 = ("sexual", "hate_and_discrimination", "violence_and_threats", "dangerous", "criminal", "selfharm",
      "health", "financial", "law", "pii", "jailbreaking")
V1 = ("sexual", "hate_and_discrimination", "violence_and_threats", "dangerous_and_criminal_content", "selfharm",
      "health", "financial", "law", "pii")


def _rx(*patterns: str) -> list[re.Pattern]:
    return [re.compile(p, re.I) for p in patterns]


RULES: dict[str, list[re.Pattern]] = {
    "sexual": _rx(r"\bporn\w*", r"\bnudes?\b", r"\bnaked\b", r"\bexplicit sex", r"\bsex(?:ual)?\s+(?:act|content|service)",
                  r"\berotic\w*", r"\bnsfw\b", r"\bhave sex\b", r"\bescort service"),
    "hate_and_discrimination": _rx(
        r"\bi hate (?:all )?(?:immigrants|foreigners|muslims|jews|christians|blacks|whites|asians|gays|women|men)\b",
        r"\b(?:immigrants|muslims|jews|blacks|gays|women|foreigners) (?:are|were) (?:all )?(?:vermin|animals|subhuman|inferior|scum|parasites)",
        r"\binferior (?:race|people)\b", r"\bsubhuman\b", r"\bgo back to your (?:own )?country\b",
        r"\bexterminate (?:them|all)\b", r"\bethnic cleansing\b", r"\bracial purity\b"),
    "violence_and_threats": _rx(
        r"\b(?:i(?:'ll| will| am going to|'m going to)|we(?:'ll| will)) (?:kill|murder|shoot|stab|hurt|beat|attack|destroy) (?:you|him|her|them|everyone)\b",
        r"\bkill (?:you|him|her|them|everyone)\b", r"\bmurder\w*\b", r"\bshoot (?:up|them|him|her|you)\b",
        r"\bstab(?:s|bed|bing)?\b", r"\bbeat (?:you|him|her|them) up\b", r"\bbomb threat\b", r"\bmassacre\b",
        r"\bterrorist attack\b", r"\byou(?:'re| are) (?:dead|going to die)\b", r"\bbreak your (?:legs|neck)\b"),
    "dangerous": _rx(
        r"\b(?:make|build|assemble|synthesi[sz]e|cook)\b[^.\n]{0,30}\b(?:bomb|explosives?|pipe bomb|napalm|nerve agent|sarin|ricin|meth(?:amphetamine)?)\b",
        r"\bexplosives?\b", r"\bdetonat\w+", r"\bpoison (?:someone|him|her|them|a person)\b", r"\bbioweapon\w*",
        r"\bhow (?:much|many) \w+ (?:is|are) (?:lethal|a lethal dose)\b"),
    "criminal": _rx(
        r"\b(?:steal\w*|stole|stolen|shoplift\w*|rob|robs|robbed|robbing|robbery)\b", r"\bhack(?:ing)? into\b", r"\blaunder\w* (?:money|cash)\b", r"\bmoney laundering\b",
        r"\bcounterfeit\w*\b", r"\bfraud\w*\b", r"\bwithout getting caught\b", r"\bsell (?:drugs|cocaine|heroin)\b",
        r"\bbribe\w*\b", r"\bidentity theft\b", r"\bevade taxes\b", r"\bphishing\b"),
    "selfharm": _rx(
        r"\bkill(?:ing)? myself\b", r"\bsuicid\w*", r"\bend (?:my|it all|my own) life\b", r"\bend it all\b",
        r"\bself[- ]harm\w*", r"\bcut(?:ting)? myself\b", r"\bwant to die\b", r"\boverdose\b", r"\bhurt myself\b",
        r"\bstarv(?:e|ing) myself\b"),
    "health": _rx(
        r"\b(?:dosage|dose) of\b", r"\bhow much \w+ should i take\b", r"\bshould i (?:take|stop taking)\b",
        r"\bdiagnos\w+", r"\bprescri\w+", r"\bsymptoms? of\b", r"\btreat(?:ment)? for\b", r"\bmedication\w*"),
    "financial": _rx(
        r"\bshould i (?:buy|sell|invest)\b", r"\binvest(?:ing|ment|ments|or|ors|ed)?\b",
        r"\b(?:stock market|buy stocks|sell stocks|stock price)\b", r"\bcrypto(?:currenc\w+)?\b", r"\bbitcoin\b",
        r"\bmortgage\b", r"\bretirement (?:savings|fund|account)\b", r"\bportfolio\b", r"\bloan\b"),
    "law": _rx(
        r"\blegal advice\b", r"\bis it (?:legal|illegal)\b", r"\bsue\b", r"\blawsuit\b", r"\blawyer\b", r"\battorney\b",
        r"\bcustody\b", r"\bmy rights\b", r"\bcourt case\b", r"\bcontract clause\b"),
    "pii": _rx(
        r"[\w.+-]+@[\w-]+\.[\w.-]+", r"\b\d{3}-\d{2}-\d{4}\b", r"(?<!\d)(?:\d[ -]?){13,16}(?!\d)",
        r"\+?\d{1,3}[\s.-]?\(?\d{2,4}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}\b",
        r"\b\d{1,5} \w+(?: \w+)? (?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr)\b",
        r"\b(?:social security|passport|driver'?s licen[cs]e|credit card) (?:number|no\.?)\b",
        r"\bmy (?:home )?address is\b", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}\b"),
    "jailbreaking": _rx(
        r"\bignore (?:all |any )?(?:previous|prior|above|your) (?:instructions|rules|guidelines)\b",
        r"\bdeveloper mode\b", r"\bjailbreak\w*", r"\bdo anything now\b",
        r"\bpretend (?:you (?:are|have)|to be) (?:an? )?(?:ai )?(?:with )?no (?:rules|restrictions|filters|limits)\b",
        r"\bbypass (?:your |the )?(?:safety|filters?|guardrails|restrictions)\b", r"\bwithout (?:any )?restrictions\b"),
}
RULES["dangerous_and_criminal_content"] = RULES["dangerous"] + RULES["criminal"]


def _baseline(text: str, category: str) -> float:
    digest = hashlib.blake2b(f"{category}\x1f{text}".encode(), digest_size=4).digest()
    return round(1e-5 + int.from_bytes(digest, "little") / 2**32 * 0.004, 8)


def score(text: str, category: str) -> float:
    """The category's score for a text: a small baseline, or 0.85 and up when its cues match."""
    hits = sum(len(rule.findall(text)) for rule in RULES[category])
    if not hits:
        return _baseline(text, category)
    return round(1 - 0.15 * 0.5 ** (min(hits, 20) - 1), 6)


def categories_of(model_id: str) -> tuple[str, ...]:
    return V1 if model_id == "mistral-moderation-2411" else V2


def moderate(text: str, model_id: str) -> dict:
    """One ModerationObject: category_scores and the categories they flag."""
    scores = {c: score(text, c) for c in categories_of(model_id)}
    return {"categories": {c: s >= FLAGGED for c, s in scores.items()}, "category_scores": scores}


def classify(text: str, model_id: str) -> dict:
    """One classification result: the moderation target with a score per category."""
    return {"moderation": {"scores": {c: score(text, c) for c in categories_of(model_id)}}}
