"""The predicates of activations (com.apple.activation.simple's Predicate), as a device
evaluates them: a subset of Apple's NSPredicate format strings over the device's status items
and its management properties.

    evaluate("@status(device.operating-system.family) == 'iOS'", facts)  -> True

What is understood:

- values: `@status(dotted.name)` (a status item of the device, None when it has none),
  `@property(name)` (a key of the com.apple.management.properties declarations), strings in
  single or double quotes (backslash escapes), integers and decimals, TRUE / YES, FALSE / NO,
  NULL / NIL, and `{a, b, ...}` lists (for IN);
- comparisons: `==` `=` `!=` `<>` `<` `<=` `=<` `>` `>=` `=>`, BEGINSWITH, ENDSWITH, CONTAINS,
  IN, LIKE (`*` and `?`), MATCHES (a regular expression, whole string), each string operator
  optionally `[c]` (case-insensitive), `[d]` (diacritics ignored) or `[cd]`;
- TRUEPREDICATE, FALSEPREDICATE, NOT / `!`, AND / `&&`, OR / `||`, parentheses. Keywords are
  case-insensitive, as NSPredicate's are.

Strings compare as NSString's `compare:` does, character by character (so "17.5" > "17.10").
A comparison with a missing value (None) is false but for equality. Anything else is a
PredicateSyntaxError (the device reports Error.UnableToParsePredicate) or, for values that
cannot be compared (a string ordered against a number), a PredicateEvaluationError
(Error.UnableToEvaluatePredicate).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Lookup = Callable[[str], Any]


class PredicateError(ValueError):
    """A predicate the device cannot use."""


class PredicateSyntaxError(PredicateError):
    """Not a predicate of the understood subset."""


class PredicateEvaluationError(PredicateError):
    """A well-formed predicate whose values cannot be compared."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<function>@(?:status|property)\s*\(\s*[^()\s]+\s*\))
      | (?P<operator>==|!=|<>|<=|=<|>=|=>|&&|\|\||[=<>!(){},])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<modifier>\[[cdCD]{1,2}\])
    )""",
    re.VERBOSE,
)
COMPARISONS = {"==": "==", "=": "==", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", "=<": "<="}
COMPARISONS |= {">": ">", ">=": ">=", "=>": ">="}
WORD_OPERATORS = ("BEGINSWITH", "ENDSWITH", "CONTAINS", "IN", "LIKE", "MATCHES")
CONSTANTS = {"TRUE": True, "YES": True, "FALSE": False, "NO": False, "NULL": None, "NIL": None}


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, function, operator, word, modifier, end
    text: str


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        found = _TOKEN.match(text, position)
        if found is None or found.end() == position:
            raise PredicateSyntaxError(f"unexpected {text[position:].strip()[:20]!r}")
        kind = found.lastgroup or ""
        tokens.append(Token(kind, found.group(kind)))
        position = found.end()
    tokens.append(Token("end", ""))
    return tokens


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


class _Parser:
    """Recursive descent over the tokens, evaluating as it goes (predicates are small)."""

    def __init__(self, text: str, lookup_status: Lookup, lookup_property: Lookup):
        self.tokens = tokenize(text)
        self.at = 0
        self.status = lookup_status
        self.property = lookup_property

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def word(self, *names: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.upper() in names

    def symbol(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind == "operator" and token.text in texts

    def expect(self, text: str) -> None:
        if not self.symbol(text):
            found = self.peek().text or "the end"
            raise PredicateSyntaxError(f"expected {text!r}, found {found!r}")
        self.take()

    def whole(self) -> bool:
        result = self.disjunction()
        if self.peek().kind != "end":
            raise PredicateSyntaxError(f"unexpected {self.peek().text!r}")
        return result

    def disjunction(self) -> bool:
        result = self.conjunction()
        while self.word("OR") or self.symbol("||"):
            self.take()
            result = self.conjunction() or result  # both sides parsed: syntax checked whole
        return result

    def conjunction(self) -> bool:
        result = self.negation()
        while self.word("AND") or self.symbol("&&"):
            self.take()
            result = self.negation() and result
        return result

    def negation(self) -> bool:
        if self.word("NOT") or self.symbol("!"):
            self.take()
            return not self.negation()
        return self.primary()

    def primary(self) -> bool:
        if self.symbol("("):
            self.take()
            result = self.disjunction()
            self.expect(")")
            return result
        if self.word("TRUEPREDICATE", "FALSEPREDICATE"):
            return self.take().text.upper() == "TRUEPREDICATE"
        left = self.value()
        operator, modifiers = self.operator()
        right = self.value()
        return compare(left, operator, right, modifiers)

    def operator(self) -> tuple[str, str]:
        token = self.take()
        if token.kind == "operator" and token.text in COMPARISONS:
            name = COMPARISONS[token.text]
        elif token.kind == "word" and token.text.upper() in WORD_OPERATORS:
            name = token.text.upper()
        else:
            raise PredicateSyntaxError(f"expected a comparison, found {token.text or 'the end'!r}")
        modifiers = ""
        if self.peek().kind == "modifier":
            modifiers = self.take().text[1:-1].lower()
        return name, modifiers

    def value(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "function":
            name, argument = token.text[1:].split("(", 1)
            argument = argument.rstrip(")").strip()
            lookup = self.status if name.strip() == "status" else self.property
            return lookup(argument)
        if token.kind == "word" and token.text.upper() in CONSTANTS:
            return CONSTANTS[token.text.upper()]
        if token.kind == "operator" and token.text == "{":
            items = []
            while not self.symbol("}"):
                items.append(self.value())
                if not self.symbol("}"):
                    self.expect(",")
            self.take()
            return items
        raise PredicateSyntaxError(f"expected a value, found {token.text or 'the end'!r}")


def _fold(value: Any, modifiers: str) -> Any:
    if isinstance(value, list):
        return [_fold(item, modifiers) for item in value]
    if not isinstance(value, str):
        return value
    if "d" in modifiers:
        decomposed = unicodedata.normalize("NFD", value)
        value = "".join(c for c in decomposed if not unicodedata.combining(c))
    return value.casefold() if "c" in modifiers else value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare(left: Any, operator: str, right: Any, modifiers: str = "") -> bool:
    """One comparison, NSPredicate's way."""
    left, right = _fold(left, modifiers), _fold(right, modifiers)
    if operator == "==":
        return left == right
    if operator == "!=":
        return left != right
    if operator == "IN":
        return _contains(right, left)
    if operator == "CONTAINS":
        return _contains(left, right)
    if left is None or right is None:
        return False
    if operator in ("<", "<=", ">", ">="):
        if not (_number(left) and _number(right)) and not (
            isinstance(left, str) and isinstance(right, str)
        ):
            raise PredicateEvaluationError(f"cannot order {left!r} and {right!r}")
        return {
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[operator]
    if not (isinstance(left, str) and isinstance(right, str)):
        raise PredicateEvaluationError(f"{operator} compares strings, not {left!r} and {right!r}")
    if operator == "BEGINSWITH":
        return left.startswith(right)
    if operator == "ENDSWITH":
        return left.endswith(right)
    if operator == "LIKE":
        pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in right)
        return re.fullmatch(pattern, left, re.S) is not None
    try:  # MATCHES
        return re.fullmatch(right, left) is not None
    except re.error as exc:
        raise PredicateEvaluationError(f"MATCHES {right!r}: {exc}") from None


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, list):
        return item in container
    if isinstance(container, str) and isinstance(item, str):
        return item in container
    if container is None:
        return False
    raise PredicateEvaluationError(f"{container!r} cannot contain {item!r}")


def evaluate(
    predicate: str,
    status: dict[str, Any] | Lookup,
    properties: dict[str, Any] | Lookup | None = None,
) -> bool:
    """Whether `predicate` holds for the device whose status items (dotted names) and
    management properties are given (as dictionaries or lookups). Raises PredicateError."""
    if not isinstance(predicate, str) or not predicate.strip():
        raise PredicateSyntaxError("the predicate is empty")
    lookup_status = status.get if isinstance(status, dict) else status
    props = properties if properties is not None else {}
    lookup_property = props.get if isinstance(props, dict) else props
    return _Parser(predicate, lookup_status, lookup_property).whole()
