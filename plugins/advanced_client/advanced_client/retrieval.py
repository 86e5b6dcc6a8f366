"""Local retrieval: Okapi BM25 over your own messages, chats and files, and a context
that fits a token budget.

Why our own BM25 (60 lines) and not rank-bm25 or bm25s: the corpus is small (a person's
messages and a few documents, thousands of chunks at most), it changes with every
message, and what matters is the tokeniser (the same one for the query and the chunks,
with stopwords and a light stemmer), not a sparse-matrix engine. The scoring is the
textbook one (Robertson et al.): ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` (never
negative) and ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen))``.

Tokens of the budget are estimated (no tokenizer of the model is available offline):
``max(words * 4 / 3, characters / 4)``, the usual rule of thumb for English BPE
vocabularies; the page says "≈" wherever it shows them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
# Common English function words: they match everything and rank nothing.
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for
from further had has have having he her here hers herself him himself his how i if in
into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours
yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
CHUNK_WORDS = 120
CHUNK_OVERLAP = 30


def _stem(word: str) -> str:
    """A light suffix stripper: a plural ending, then a verb ending, then a final "e":
    "meetings" and "meeting" meet, "scheduled", "schedules" and "schedule" meet. Not
    Porter: precise enough for a person's own texts, and predictable."""
    for suffixes in ((("ies", "y"), ("sses", "ss"), ("es", ""), ("s", "")),
                     (("ing", ""), ("edly", ""), ("ed", ""), ("ly", ""))):
        for suffix, keep in suffixes:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: len(word) - len(suffix)] + keep
                if suffix in ("ed", "ing") and len(word) > 3 and word[-1] == word[-2] \
                        and word[-1] not in "lsz":
                    word = word[:-1]  # "planned" -> "plan", "running" -> "run"
                break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The index terms of ``text``: lower-case words without stopwords, stemmed."""
    out = []
    for match in WORD.finditer(text.lower()):
        word = match.group()
        if word in STOPWORDS or len(word) < 2:
            continue
        out.append(_stem(word))
    return out


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens a model's BPE tokenizer makes of ``text``."""
    if not text:
        return 0
    return max(1, math.ceil(max(len(text.split()) * 4 / 3, len(text) / 4)))


def chunk_text(text: str, words: int = CHUNK_WORDS, overlap: int = CHUNK_OVERLAP
               ) -> list[str]:
    """``text`` cut into windows of ``words`` words that overlap by ``overlap`` (so a
    sentence on a border is whole in one of them)."""
    parts = text.split()
    if len(parts) <= words:
        return [" ".join(parts)] if parts else []
    step = max(1, words - overlap)
    return [" ".join(parts[i:i + words]) for i in range(0, len(parts) - overlap, step)]


@dataclass
class Doc:
    """One retrievable piece: ``kind`` (message, chat, file, note), where it came from
    (``source_id``, ``title``) and its text."""

    kind: str
    source_id: str
    title: str
    text: str
    terms: list[str] = field(default_factory=list, repr=False)


@dataclass
class Hit:
    doc: Doc
    score: float


class BM25:
    """Okapi BM25 over :class:`Doc` s (see the module docstring)."""

    def __init__(self, docs: Iterable[Doc], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.docs: list[Doc] = []
        self._tf: list[Counter[str]] = []
        self.df: Counter[str] = Counter()
        for doc in docs:
            if not doc.terms:
                doc.terms = terms(doc.text)
            if not doc.terms:
                continue
            self.docs.append(doc)
            counts = Counter(doc.terms)
            self._tf.append(counts)
            self.df.update(counts.keys())
        self.avglen = (sum(len(d.terms) for d in self.docs) / len(self.docs)) if self.docs \
            else 0.0

    def __len__(self) -> int:
        return len(self.docs)

    def idf(self, term: str) -> float:
        n, df = len(self.docs), self.df.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def score(self, query_terms: Sequence[str], index: int) -> float:
        tf, length = self._tf[index], len(self.docs[index].terms)
        total = 0.0
        for term in set(query_terms):
            f = tf.get(term, 0)
            if not f:
                continue
            norm = f + self.k1 * (1 - self.b + self.b * length / self.avglen)
            total += self.idf(term) * f * (self.k1 + 1) / norm
        return total

    def search(self, query: str, limit: int = 8) -> list[Hit]:
        """The best ``limit`` docs for ``query`` with a score above zero, best first
        (ties in corpus order, so the answer is deterministic)."""
        wanted = terms(query)
        if not wanted or not self.docs:
            return []
        scored = [(self.score(wanted, i), i) for i in range(len(self.docs))]
        scored = [(s, i) for s, i in scored if s > 0]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [Hit(self.docs[i], round(s, 4)) for s, i in scored[:limit]]


@dataclass
class ContextPiece:
    kind: str
    source_id: str
    title: str
    text: str
    tokens: int
    score: float | None = None
    truncated: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "source_id": self.source_id, "title": self.title,
                "tokens": self.tokens, "score": self.score, "truncated": self.truncated,
                "excerpt": self.text[:240] + ("…" if len(self.text) > 240 else "")}


def cut_to_tokens(text: str, budget: int) -> tuple[str, bool]:
    """The head of ``text`` that fits ``budget`` estimated tokens, cut at a word."""
    if estimate_tokens(text) <= budget:
        return text, False
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # the longest prefix of words that fits
        mid = (lo + hi + 1) // 2
        if estimate_tokens(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]), True


def assemble(attached: Sequence[Doc], hits: Sequence[Hit], budget: int
             ) -> list[ContextPiece]:
    """The context for a question within ``budget`` estimated tokens: what the user
    attached first (each cut to fit when it alone is too long), then retrieved chunks by
    score while they fit whole. Nothing is taken twice."""
    pieces: list[ContextPiece] = []
    left = budget
    seen: set[tuple[str, str, str]] = set()
    for doc in attached:
        if left <= 0:
            break
        text, cut = cut_to_tokens(doc.text, left)
        if not text:
            continue
        tokens = estimate_tokens(text)
        pieces.append(ContextPiece(doc.kind, doc.source_id, doc.title, text, tokens, None, cut))
        seen.add((doc.kind, doc.source_id, doc.text))
        left -= tokens
    for hit in hits:
        doc = hit.doc
        key = (doc.kind, doc.source_id, doc.text)
        if key in seen or any(p.source_id == doc.source_id and p.kind == doc.kind
                              and not p.truncated and p.score is None for p in pieces):
            continue
        tokens = estimate_tokens(doc.text)
        if tokens > left:
            continue
        pieces.append(ContextPiece(doc.kind, doc.source_id, doc.title, doc.text, tokens,
                                   hit.score))
        seen.add(key)
        left -= tokens
    return pieces


def context_prompt(pieces: Sequence[ContextPiece]) -> str:
    """The system message that carries the context, each piece labelled with where it
    came from (so the answer can cite it)."""
    if not pieces:
        return ""
    blocks = [f"[{i}] {p.kind}: {p.title}\n{p.text}" for i, p in enumerate(pieces, 1)]
    return ("Use the following context to answer. Cite it as [1], [2]... where you use "
            "it; say so when it does not contain the answer.\n\n" + "\n\n".join(blocks))
