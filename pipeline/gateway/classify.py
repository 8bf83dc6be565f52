"""Content classification (pure): text -> detected spans, categories, level, content features.

Detectors built for the job, each a pattern plus a validator where one exists:

    pii.email           RFC 5322-ish address
    pii.phone           international (+CC ...) or common national formats, 8-15 digits
    pii.iban            ISO 13616 IBAN whose mod-97 checksum is 1
    pii.card            13-19 digit card number that passes Luhn
    pii.us_ssn          AAA-GG-SSSS without the never-issued areas 000, 666, 9xx
    pii.uk_nino         UK National Insurance number (HMRC prefix rules)
    secret.aws_key      AWS access key id (AKIA/ASIA...)
    secret.private_key  PEM private key header
    secret.github_token GitHub personal/OAuth/app tokens (ghp_, gho_, ghu_, ghs_, ghr_)
    secret.openai_key   sk-... / sk-proj-... API keys
    secret.slack_token  xoxb-/xoxp-/... tokens
    secret.google_key   AIza... API keys
    secret.stripe_key   sk_live_/rk_live_ keys
    secret.jwt          three base64url segments starting eyJ
    org.<name>          organisation terms declared in the policy

The level is the highest of the categories found (pii -> confidential, secret -> restricted,
org terms as declared), never below the policy's default. Cheap gates first ('@' for e-mail,
a run of six digits for the numeric detectors, the literal prefixes of the secrets), then the
detectors the gates let through run as one compiled alternation, so a prompt is scanned once
(ARCHITECTURE.md: regex costs ~0.3 ms/KB; content features are computed here, once, and
carried in the event).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiaudit.pipeline.contract.schema import LEVEL_RANK, LEVELS  # the contract's enum, lowest first

_DETECTORS: tuple[tuple[str, str], ...] = (
    ("pii.email", r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}\b"),
    ("pii.iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
    ("pii.card", r"\b\d(?:[ -]?\d){12,18}\b"),
    ("pii.us_ssn", r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"),
    ("pii.uk_nino", r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
    # +CC ..., (area) ..., or 3-3-4; not bare digit groups, which would match dates and versions.
    ("pii.phone", r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
                  r"|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}|\d{3}[.-]\d{3}[.-]\d{4})(?!\w)"),
    ("secret.aws_key", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"),
    ("secret.private_key", r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"),
    ("secret.github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
    ("secret.openai_key", r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}\b"),
    ("secret.slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    ("secret.google_key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    ("secret.stripe_key", r"\b(?:sk|rk)_live_[0-9a-zA-Z]{24,}\b"),
    ("secret.jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
)
# Gates: which detector families can match at all. A family whose gate fails is skipped.
_FAMILY = {"pii.email": "email", "pii.iban": "numeric", "pii.card": "numeric", "pii.us_ssn": "numeric",
           "pii.uk_nino": "numeric", "pii.phone": "numeric"}  # the rest: "secret"
_NUMERIC_GATE = re.compile(r"\d(?:[ .()/-]{0,2}\d){5}")
_SECRET_GATE = re.compile(r"AKIA|ASIA|AGPA|AIDA|AROA|-----BEGIN|gh[pousr]_|sk-|xox[abposr]-|AIza|_live_|eyJ")
_INJECTION_WORDS = ("ignore", "disregard", "you are now", "system prompt", "do anything now", "pretend", "<|im_start|>",
                    "[inst]", "<<sys>>", "<|system|>")
# Injection markers and their weight in `injection_markers`. A weak marker (1) is a phrase that security
# training, red-team notes and articles quote; a strong one (3) is what an ordinary prompt does not
# contain: a chat template's control tokens, a persona switch, a demand to drop the rules.
INJECTION_WEIGHT = {"weak": 1, "strong": 3}
_INJECTION = re.compile(
    r"(?P<weak>ignore (?:all |any )?(?:the )?(?:previous|prior|above) (?:instructions|prompts?|rules)"
    r"|disregard (?:all |the )?(?:previous|prior|above)"
    r"|reveal (?:your |the )?system prompt|print (?:your |the )?system prompt)"
    r"|(?P<strong>you are now (?:in )?(?:dan|developer mode|jailbroken)|do anything now"
    r"|pretend (?:that )?you have no (?:rules|restrictions)|<\|im_start\|>|<\|system\|>|\[INST\]|<<SYS>>)",
    re.IGNORECASE,
)
_URL = re.compile(r"\bhttps?://[^\s<>\"']+", re.IGNORECASE)
_BLOB = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}|\b[0-9a-fA-F]{64,}\b")
_DIGITS = re.compile(r"\D")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card_ok(text: str) -> bool:
    digits = _DIGITS.sub("", text)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and _luhn(digits)


def _phone_ok(text: str) -> bool:
    n = len(_DIGITS.sub("", text))
    return 8 <= n <= 15


_VALIDATORS = {"pii.iban": _iban_ok, "pii.card": _card_ok, "pii.phone": _phone_ok}


@dataclass(frozen=True)
class OrgTerm:
    """An organisation-specific term from the policy: found as `org.<name>`, at least `level`.

    `pattern` is a Python regular expression matched case-insensitively (no inline global flags).
    """

    name: str
    pattern: str
    level: str = "confidential"


@dataclass(frozen=True)
class Hit:
    category: str
    start: int
    end: int


@dataclass(frozen=True)
class Classification:
    level: str
    categories: tuple[str, ...]  # sorted, distinct
    hits: tuple[Hit, ...]

    @property
    def pii_hits(self) -> int:
        return sum(1 for h in self.hits if h.category.startswith("pii."))

    @property
    def secret_hits(self) -> int:
        return sum(1 for h in self.hits if h.category.startswith("secret."))

    def avro(self) -> dict[str, object]:
        return {"level": self.level, "categories": list(self.categories)}


class Classifier:
    """Built once per policy (the org terms are part of the pattern); classify() is pure."""

    def __init__(self, org_terms: Sequence[OrgTerm] = (), default_level: str = "internal") -> None:
        if default_level not in LEVEL_RANK:
            raise ValueError(f"unknown level {default_level!r}; use one of {', '.join(LEVELS)}")
        self.default_level = default_level
        self._org_levels = {f"org.{t.name}": t.level for t in org_terms}
        self._org = [(f"org.{t.name}", f"(?i:{t.pattern})") for t in org_terms]
        for t in org_terms:
            re.compile(t.pattern)  # alone, so an error names the term's own pattern
        self._patterns: dict[frozenset[str], tuple[re.Pattern[str], list[str]] | None] = {}
        # The org terms come from the policy file: compiled now, so a bad pattern fails the load.
        self._pattern_for(frozenset({"email", "numeric", "secret"}))

    @property
    def categories(self) -> tuple[str, ...]:
        """Every category this classifier can report: the built-in detectors and the org terms."""
        return tuple(name for name, _ in _DETECTORS) + tuple(self._org_levels)

    def _pattern_for(self, families: frozenset[str]) -> tuple[re.Pattern[str], list[str]] | None:
        """The alternation of the detectors in `families` plus the org terms (compiled once per set)."""
        if families not in self._patterns:
            chosen = [(n, p) for n, p in _DETECTORS if _FAMILY.get(n, "secret") in families] + self._org
            self._patterns[families] = (
                (re.compile("|".join(f"(?P<g{i}>{p})" for i, (_, p) in enumerate(chosen))), [n for n, _ in chosen])
                if chosen else None)
        return self._patterns[families]

    def level_of(self, category: str) -> str:
        if category.startswith("secret."):
            return "restricted"
        if category.startswith("pii."):
            return "confidential"
        return self._org_levels.get(category, "confidential")

    def classify(self, text: str) -> Classification:
        families = frozenset(f for f, gate in (("email", "@" in text), ("numeric", _NUMERIC_GATE.search(text)),
                                               ("secret", _SECRET_GATE.search(text))) if gate)
        compiled = self._pattern_for(families)
        if compiled is None:
            return Classification(self.default_level, (), ())
        pattern, names = compiled
        hits = []
        for m in pattern.finditer(text):
            name = names[int(m.lastgroup[1:])]  # type: ignore[index]  # lastgroup is set: every branch is a group
            ok = _VALIDATORS.get(name)
            if ok is None or ok(m.group()):
                hits.append(Hit(name, m.start(), m.end()))
        categories = tuple(sorted({h.category for h in hits}))
        rank = max([LEVEL_RANK[self.default_level], *(LEVEL_RANK[self.level_of(c)] for c in categories)])
        return Classification(LEVELS[rank], categories, tuple(hits))

    def classify_all(self, texts: Iterable[str]) -> Classification:
        return merge([self.classify(t) for t in texts], self.default_level)


def merge(parts: Sequence[Classification], default_level: str) -> Classification:
    """One classification for several texts (hits keep offsets within their own text)."""
    hits = tuple(h for p in parts for h in p.hits)
    categories = tuple(sorted({c for p in parts for c in p.categories}))
    rank = max([LEVEL_RANK[default_level], *(LEVEL_RANK[p.level] for p in parts)])
    return Classification(LEVELS[rank], categories, hits)


def redact(text: str, classification: Classification, categories: frozenset[str]) -> str:
    """`text` with the spans of the given categories replaced by `[REDACTED:<category>]`."""
    spans = sorted((h for h in classification.hits if h.category in categories), key=lambda h: h.start)
    out, pos = [], 0
    for h in spans:
        if h.start < pos:  # overlapping hits: the first one already covers it
            continue
        out.append(text[pos:h.start])
        out.append(f"[REDACTED:{h.category}]")
        pos = h.end
    out.append(text[pos:])
    return "".join(out)


def entropy_milli(text: str) -> int:
    """Shannon entropy in millibits per character."""
    if not text:
        return 0
    n = len(text)
    return round(-1000 * sum(c / n * math.log2(c / n) for c in Counter(text).values()))


def _injection_markers(text: str) -> int:
    """The prompt's injection marker weight: 1 per weak marker, 3 per strong one."""
    lowered = text.lower()
    if not any(word in lowered for word in _INJECTION_WORDS):
        return 0
    return sum(INJECTION_WEIGHT[m.lastgroup or "weak"] for m in _INJECTION.finditer(text))


def content_features(prompt: str, prompt_cls: Classification, response: str = "",
                     response_cls: Classification | None = None) -> dict[str, int]:
    """The event's content_features record (integers only, per the contract)."""
    return {
        "prompt_chars": len(prompt),
        "response_chars": len(response),
        "prompt_entropy_milli": entropy_milli(prompt),
        "prompt_pii_hits": prompt_cls.pii_hits,
        "prompt_secret_hits": prompt_cls.secret_hits,
        "response_pii_hits": response_cls.pii_hits if response_cls else 0,
        "response_secret_hits": response_cls.secret_hits if response_cls else 0,
        "injection_markers": _injection_markers(prompt),
        "url_count": len(_URL.findall(prompt)),
        "encoded_blob_count": len(_BLOB.findall(prompt)),
    }
