"""The semantic cache's negation guard: polarity on hand-picked prompts, the guard's verdict on
pairs, and its overall behaviour on the labelled set in tests/data."""

import json
from pathlib import Path

import pytest

from warlock_ai.core.cache.guard import negation_guard, polarity, resolve_guard
from warlock_ai.core.errors import CacheConfigurationError

PAIRS_FILE = Path(__file__).resolve().parent.parent / "data" / "semantic_cache_pairs.json"


@pytest.mark.parametrize(
    ("text", "cues"),
    [
        ("Please refund my order.", ()),
        ("Please do not refund my order.", ("not",)),
        ("Don't cancel my subscription", ("don't",)),
        ("I DON'T want a refund!", ("don't",)),
        ("i dont want a refund", ("dont",)),
        ("I didn\u2019t authorize this payment.", ("didn't",)),
        ("I can't log in", ("can't",)),
        ("I cannot log in", ("cannot",)),
        ("I won't be home for the delivery", ("won't",)),
        ("My parcel isn't here", ("isn't",)),
        ("You shouldn't charge me twice", ("shouldn't",)),
        ("I never got the email", ("never",)),
        ("No refund, please.", ("no",)),
        ("I no longer live there", ("no",)),
        ("Ship it without the receipt", ("without",)),
        ("None of my orders arrived", ("none",)),
        ("Nothing arrived", ("nothing",)),
        ("Nobody signed for it", ("nobody",)),
        ("Is this ticket non-refundable?", ("non",)),
        ("I'm unable to reset my password", ("unable",)),
        ("The parcel failed to arrive", ("failed",)),
    ],
)
def test_polarity_finds_each_negation_cue(text, cues):
    found = polarity(text)
    assert found.cues == cues
    assert found.negations == len(cues)


@pytest.mark.parametrize(
    "text",
    [
        "Not only was I charged twice, I was charged a fee.",
        "No problem, please refund my order.",
        "Never mind, cancel my subscription.",
        "I don't know how to cancel my subscription.",
        "I'm not really sure whether my payment went through.",
        "I have no idea where my package is.",
        "What is the status of order no. 4821?",
        "Order no 4821 is late",
        "Can I get a refund or not?",
        "Tell me whether or not I will be charged.",
        "No, I want to cancel my order.",
        "My payment failed.",
    ],
)
def test_polarity_reads_idioms_hedges_and_tags_as_affirmative(text):
    assert polarity(text).negations == 0, polarity(text)


def test_a_hedge_without_a_question_is_a_negation():
    assert polarity("I'm not sure the parcel was delivered.").negations == 1
    assert polarity("I don't know my password.").negations == 1


def test_double_negation_in_one_clause_cancels():
    found = polarity("There's no reason not to refund me.")
    assert found.cues == ("no", "not")
    assert found.negations == 0
    assert polarity("I can't not cancel at this price.").negations == 0


def test_negations_in_separate_clauses_add_up():
    found = polarity("Don't refund the order and don't cancel the subscription.")
    assert found.negations == 2
    assert found.negated_clauses == ("don't refund the order", "don't cancel the subscription")
    assert polarity("My email isn't verified, so why can't I log in?").negations == 2


@pytest.mark.parametrize(
    "text",
    [
        "I received neither the refund nor the replacement.",
        "I don't want a refund nor a replacement.",
        "I don't want a refund, nor a replacement.",
    ],
)
def test_nor_continues_an_earlier_negation(text):
    assert polarity(text).negations == 1


def test_nor_opening_a_sentence_negates_it():
    found = polarity("I didn't get a refund. Nor did I get a replacement.")
    assert found.cues == ("didn't", "nor")
    assert found.negations == 2


def test_polarity_of_empty_or_wordless_text():
    assert polarity("").negations == 0
    assert polarity("?!...").cues == ()


@pytest.mark.parametrize(
    ("query", "cached"),
    [
        ("I want a refund for my order.", "I don't want a refund for my order."),
        ("Please cancel my subscription.", "Please do NOT cancel my subscription."),
        ("I still live at the address on file.", "I no longer live at the address on file."),
        ("Ship my order with the gift receipt.", "Ship my order without the gift receipt."),
        ("Delete my account and all my data.", "Delete my account but not my data."),
        ("Cancel the order if it has shipped.", "Cancel the order if it hasn't shipped."),
        ("There's no reason to refund me.", "There's no reason not to refund me."),
    ],
)
def test_guard_rejects_opposite_polarity(query, cached):
    assert negation_guard(query, cached) is False
    assert negation_guard(cached, query) is False


@pytest.mark.parametrize(
    ("query", "cached"),
    [
        ("How do I get a refund?", "What's the process to request a refund?"),
        ("My package hasn't arrived yet.", "My parcel still has not been delivered."),
        ("I can't log in to my account.", "I'm unable to sign in to my account."),
        ("Don't send me marketing emails anymore.", "I no longer want promotional emails."),
        (
            "Do not delete my account, just deactivate it.",
            "Deactivate my account but don't delete it.",
        ),
        ("I don't know how to cancel my plan.", "How do I cancel my plan?"),
        ("There's no reason not to refund me.", "You should refund me."),
    ],
)
def test_guard_accepts_same_polarity(query, cached):
    assert negation_guard(query, cached) is True
    assert negation_guard(cached, query) is True


def test_guard_misses_antonyms_as_documented():
    assert negation_guard("Enable 2FA on my account.", "Disable 2FA on my account.") is True
    assert negation_guard("I can't remember my password.", "I forgot my password.") is False


def test_resolve_guard_maps_the_middleware_argument():
    def custom(query: str, cached: str) -> bool:
        return query == cached

    assert resolve_guard(True) is negation_guard
    assert resolve_guard(False) is None
    assert resolve_guard(None) is None
    assert resolve_guard(custom) is custom


@pytest.mark.parametrize("bad", [1, "yes", 0.5])
def test_resolve_guard_rejects_anything_else(bad):
    with pytest.raises(CacheConfigurationError, match=r"guard=\.\.\.\) must be True, False"):
        resolve_guard(bad)


def load_pairs():
    return json.loads(PAIRS_FILE.read_text(encoding="utf-8"))["pairs"]


def test_labelled_set_is_well_formed():
    pairs = load_pairs()
    assert len(pairs) >= 60
    assert {pair["label"] for pair in pairs} == {"paraphrase", "negation"}
    for pair in pairs:
        assert set(pair) == {"query", "cached", "label", "hard", "note"}, pair
        assert pair["query"].strip() and pair["cached"].strip() and pair["note"].strip()
        assert pair["query"] != pair["cached"]
        assert isinstance(pair["hard"], bool)
    assert len({(pair["query"], pair["cached"]) for pair in pairs}) == len(pairs)
    assert sum(pair["label"] == "negation" for pair in pairs) >= 20


def test_guard_on_the_labelled_set():
    """Every ordinary pair is judged right; the misses are all pairs marked hard."""
    pairs = load_pairs()
    wrong = [
        pair
        for pair in pairs
        if negation_guard(pair["query"], pair["cached"]) != (pair["label"] == "paraphrase")
    ]
    assert [pair for pair in wrong if not pair["hard"]] == []
    negations = [pair for pair in pairs if pair["label"] == "negation"]
    missed = [pair for pair in wrong if pair["label"] == "negation"]
    assert len(missed) / len(negations) <= 0.15
