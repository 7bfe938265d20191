"""The simulator's subset of Apple's predicate format (simulator/predicates.py): what
activations' Predicates evaluate to on a simulated device, and which ones it cannot parse or
evaluate."""

import pytest

from simulator.predicates import (
    PredicateEvaluationError,
    PredicateSyntaxError,
    evaluate,
    tokenize,
)

IPHONE = {
    "device.operating-system.family": "iOS",
    "device.operating-system.version": "17.5.1",
    "device.model.family": "iPhone",
    "device.model.identifier": "iPhone15,2",
    "device.identifier.serial-number": "SIMABC123",
}
PROPERTIES = {"department": "Sales", "level": 3, "beta": True, "tags": ["a", "b"]}


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ("@status(device.operating-system.family) == 'iOS'", True),
        ('@status(device.model.family) == "iPhone"', True),
        ("@status(device.model.family) = 'iPad'", False),
        ("@status(device.model.family) != 'iPad'", True),
        ("@status(device.model.family) <> 'iPhone'", False),
        # AND / OR / NOT, their symbols, precedence (AND before OR) and parentheses.
        (
            "@status(device.operating-system.family) == 'iOS' AND "
            "@status(device.model.family) == 'iPhone'",
            True,
        ),
        ("@status(device.model.family) == 'iPad' && @status(device.model.family) == 'x'", False),
        ("@status(device.model.family) == 'iPad' OR @status(device.model.family) = 'iPhone'", True),
        ("@status(device.model.family) == 'iPad' || @status(device.model.family) == 'x'", False),
        ("TRUEPREDICATE OR FALSEPREDICATE AND FALSEPREDICATE", True),
        ("(TRUEPREDICATE OR FALSEPREDICATE) AND FALSEPREDICATE", False),
        ("NOT @status(device.model.family) == 'iPad'", True),
        ("!(@status(device.model.family) == 'iPhone')", False),
        ("not truepredicate", False),  # keywords are case-insensitive
        ("@status(device.model.family) == 'iphone'", False),
        # String operators and their [c] / [d] modifiers.
        ("@status(device.operating-system.version) BEGINSWITH '17.'", True),
        ("@status(device.operating-system.version) beginswith '18.'", False),
        ("@status(device.model.identifier) ENDSWITH ',2'", True),
        ("@status(device.model.identifier) CONTAINS 'Phone15'", True),
        ("@status(device.model.family) ==[c] 'IPHONE'", True),
        ("@status(device.model.family) BEGINSWITH[c] 'IPH'", True),
        ("@property(department) ==[cd] 'sáles'", True),
        ("@status(device.identifier.serial-number) LIKE 'SIM*'", True),
        ("@status(device.identifier.serial-number) LIKE 'SIM?'", False),
        ("@status(device.identifier.serial-number) MATCHES 'SIM[A-Z0-9]{6}'", True),
        ("@status(device.identifier.serial-number) MATCHES 'ABC'", False),  # the whole string
        # IN a list or a string, and CONTAINS on a list.
        ("@status(device.model.family) IN {'iPhone', 'iPad'}", True),
        ("@status(device.model.family) IN {'Mac'}", False),
        ("'Phone' IN @status(device.model.family)", True),
        ("@property(tags) CONTAINS 'b'", True),
        # Order: strings as NSString compares them, numbers as numbers.
        ("@status(device.operating-system.version) >= '17.0'", True),
        ("@status(device.operating-system.version) < '17.10'", False),  # character by character
        ("@property(level) > 2", True),
        ("@property(level) <= 2.5", False),
        ("@property(level) => 3 AND @property(level) =< 3", True),
        ("@property(beta) == TRUE", True),
        ("@property(beta) == NO", False),
        # Missing values: equal to NULL, false for the other comparisons.
        ("@property(nothing) == nil", True),
        ("@property(nothing) == 'x'", False),
        ("@property(nothing) BEGINSWITH 'x'", False),
        ("@status(no.such.item) > '1'", False),
        ("@property(nothing) IN {'a'}", False),
        # Escapes in strings.
        (r"@property(department) != 'it\'s'", True),
    ],
)
def test_predicates_evaluate_against_the_device(predicate, expected):
    assert evaluate(predicate, IPHONE, PROPERTIES) is expected


@pytest.mark.parametrize(
    "predicate",
    [
        "",
        "   ",
        "@status(device.model.family)",  # a value is not a predicate
        "@status(device.model.family) ==",
        "@status(device.model.family) == 'iPhone' AND",
        "(TRUEPREDICATE",
        "TRUEPREDICATE)",
        "@status(device.model.family) === 'iPhone'",
        "@status(device.model.family) == 'unterminated",
        "@status(device.model.family) FOO 'iPhone'",
        "@status(device.model.family) == {'a' 'b'}",
        "SUBQUERY(x, $y, $y == 1).@count > 0",
        "@status(device.model.family) == 'a' # comment",
    ],
)
def test_what_the_subset_cannot_parse_is_a_syntax_error(predicate):
    with pytest.raises(PredicateSyntaxError):
        evaluate(predicate, IPHONE, PROPERTIES)


@pytest.mark.parametrize(
    "predicate",
    [
        "@status(device.model.family) > 3",  # a string ordered against a number
        "@property(level) BEGINSWITH '3'",
        "@property(level) CONTAINS 3",
        "@status(device.model.family) MATCHES '('",
    ],
)
def test_values_that_cannot_be_compared_are_an_evaluation_error(predicate):
    with pytest.raises(PredicateEvaluationError):
        evaluate(predicate, IPHONE, PROPERTIES)


def test_both_sides_of_or_are_parsed_even_when_the_left_one_holds():
    with pytest.raises(PredicateSyntaxError):
        evaluate("TRUEPREDICATE OR @status(x) ==", IPHONE)


def test_lookups_can_be_functions_and_properties_are_optional():
    asked = []

    def status(name):
        asked.append(name)
        return "iPadOS"

    assert evaluate("@status( device.operating-system.family ) == 'iPadOS'", status)
    assert asked == ["device.operating-system.family"]
    assert evaluate("@property(x) == nil", IPHONE)


def test_the_tokens_of_a_predicate():
    kinds = [t.kind for t in tokenize("@status(a.b) ==[c] 'x' AND 2 >= 1.5")]
    assert kinds == [
        "function",
        "operator",
        "modifier",
        "string",
        "word",
        "number",
        "operator",
        "number",
        "end",
    ]
