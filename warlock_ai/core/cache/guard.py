"""The semantic cache's negation guard: a cached prompt may answer a query only when both have
the same polarity ("refund my order" is never served for "do not refund my order").

Embedders place a sentence and its negation close together (cosine 0.85-0.95 is common), so a
similarity threshold alone serves the wrong answer. The guard reads each text in English as a
run of clauses (split at punctuation and at and/but/or/because/although/though/however/whereas/
while) and counts the clauses that are negated, i.e. hold an odd number of negation cues:

* words: not, no, never, none, nothing, nobody, nowhere, noone, nor, neither, without, cannot,
  unable, non (as in "non-refundable"), and "fail(s/ed/ing) to";
* contractions ending in n't (don't, can't, won't, isn't, shouldn't, ...), with straight or
  typographic apostrophes, and the same written without one (dont, cant, wont, isnt, ...);
* phrases such as "no longer", "not anymore", "not yet" count once, through their negation word.

Double negation: two cues in one clause cancel ("there's no reason not to refund me" reads as
affirmative, "I can't not cancel" likewise), while negations in separate clauses add up ("don't
refund the order and don't cancel the subscription" has two). "nor" after an earlier cue in the
same sentence continues that negation ("neither ... nor", "not ... nor") and is not counted.

Not read as negation: "not only", "no problem", "no worries", "no doubt", "no matter", "never
mind"; a hedge over a question ("don't know how", "not sure whether", "no idea where", "not
certain if"), which asks that question rather than negating the request; "no." or "no" before a
number ("order no. 4821"); "or not" ("whether or not", "... or not?"); a clause that is nothing
but a cue, such as the answer "No, I want to cancel".

What it does not handle, so a hit can still be wrong or be rejected needlessly: antonyms and
negative prefixes (enable/disable, include/exclude, forgot/can't remember, missing/never
arrived, unusual, deactivate); near-negatives (hardly, barely, rarely, seldom) and implicit
ones (unless, stop, refuse, lack, "failed" without "to"); which clause is negated (swapping
which of two actions is refused keeps the count); comparatives read literally ("no later than
Friday" counts as a negation, unlike "by Friday"); the words "wont" and "cant", always read as
won't and can't; the hedge rule also accepts "I know how to cancel" for "I don't know how to
cancel"; sarcasm; and any language other than English. Its measured effect is reported by
``bench/semantic_guard.py`` on ``tests/data/semantic_cache_pairs.json``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import CacheConfigurationError

#: A guard decides whether a cached prompt may answer a query: ``guard(query, cached) -> bool``.
Guard = Callable[[str, str], bool]

_APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u00b4`", "'"))
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*|[.!?;:,()\[\]\"\n]")
_SENTENCE_ENDS = frozenset(".!?;\n")
_CLAUSE_ENDS = frozenset('.!?;:,()[]"\n')
_CONJUNCTIONS = frozenset(
    {"and", "but", "or", "because", "although", "though", "however", "whereas", "while"}
)
_NEGATORS = frozenset(
    {
        "not", "no", "never", "none", "nothing", "nobody", "nowhere", "noone", "nor",
        "neither", "without", "cannot", "unable", "non",
    }
)  # fmt: skip
_BARE_CONTRACTIONS = frozenset(
    {
        "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "cant", "wont",
        "wouldnt", "shouldnt", "couldnt", "havent", "hasnt", "hadnt", "mustnt", "neednt",
        "aint",
    }
)  # fmt: skip
_FAIL = frozenset({"fail", "fails", "failed", "failing"})
_IDIOMS = frozenset(
    {("not", "only"), ("no", "problem"), ("no", "worries"), ("no", "doubt"), ("no", "matter"),
     ("never", "mind")}
)  # fmt: skip
_HEDGES = frozenset({"sure", "certain", "know", "idea"})
_HEDGE_FILLERS = frozenset({"really", "quite", "entirely", "exactly", "too", "very"})
_QUESTION_WORDS = frozenset(
    {"how", "what", "why", "where", "when", "which", "who", "whether", "if", "about"}
)


@dataclass(frozen=True)
class Polarity:
    """What the guard read in one text: the negated clauses and every cue it counted."""

    negated_clauses: tuple[str, ...]
    cues: tuple[str, ...]

    @property
    def negations(self) -> int:
        """The number of negated clauses; two texts of equal count have the same polarity."""
        return len(self.negated_clauses)


def polarity(text: str) -> Polarity:
    """Read ``text`` (English) into its negated clauses and the negation cues found in it."""
    tokens = _TOKEN.findall(text.translate(_APOSTROPHES).lower())
    negated: list[str] = []
    found: list[str] = []
    clause: list[str] = []
    cues: list[str] = []
    sentence_negated = False

    def close_clause() -> None:
        # A clause of cues alone ("No, ...") answers the assistant; it negates nothing.
        if len(cues) < len(clause):
            found.extend(cues)
            if len(cues) % 2:
                negated.append(" ".join(clause))
        clause.clear()
        cues.clear()

    for i, token in enumerate(tokens):
        if token in _CLAUSE_ENDS or token in _CONJUNCTIONS:
            close_clause()
            sentence_negated = sentence_negated and token not in _SENTENCE_ENDS
            continue
        clause.append(token)
        if _is_cue(tokens, i) and not (token == "nor" and sentence_negated):
            cues.append(token)
            sentence_negated = True
    close_clause()
    return Polarity(negated_clauses=tuple(negated), cues=tuple(found))


def _is_cue(tokens: list[str], i: int) -> bool:
    """Whether ``tokens[i]`` negates its clause, given the words around it."""
    token = tokens[i]
    following = tokens[i + 1] if i + 1 < len(tokens) else ""
    if token in _FAIL:
        return following == "to"
    if not (token in _NEGATORS or token in _BARE_CONTRACTIONS or token.endswith("n't")):
        return False
    if (token, following) in _IDIOMS or (token == "not" and i and tokens[i - 1] == "or"):
        return False
    if token == "no" and _before_number(tokens, i + 1):
        return False
    return not _is_hedge(tokens, i + 1)


def _before_number(tokens: list[str], i: int) -> bool:
    """Whether a number follows at ``i``, past an optional full stop ("no. 4821")."""
    if i < len(tokens) and tokens[i] == ".":
        i += 1
    return i < len(tokens) and tokens[i][0].isdigit()


def _is_hedge(tokens: list[str], i: int) -> bool:
    """Whether the words from ``i`` make the cue a hedge over a question ("not really sure
    whether", "don't know how"); "not sure the parcel came" stays a negation."""
    while i < len(tokens) and tokens[i] in _HEDGE_FILLERS:
        i += 1
    if i + 1 >= len(tokens) or tokens[i] not in _HEDGES:
        return False
    return tokens[i + 1] in _QUESTION_WORDS


def negation_guard(query: str, cached: str) -> bool:
    """True when ``cached`` may answer ``query``: both have as many negated clauses."""
    return polarity(query).negations == polarity(cached).negations


def resolve_guard(guard: bool | Guard | None) -> Guard | None:
    """The guard a ``semantic_cache(guard=...)`` argument names: ``True`` is
    ``negation_guard``, ``None``/``False`` is none, a callable is used as it is."""
    if guard is True:
        return negation_guard
    if guard is None or guard is False:
        return None
    if callable(guard):
        return guard
    raise CacheConfigurationError(
        f"semantic_cache(guard=...) must be True, False, None or a callable "
        f"(query, cached) -> bool; got {guard!r}"
    )
