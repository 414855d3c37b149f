"""The attribute filter language (Alibaba Image Search dialect).

Grammar (keywords AND, OR, IN, NOT are case-insensitive; so are field names)::

    filter     := or_expr END
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := primary ("AND" primary)*
    primary    := "(" or_expr ")" | condition
    condition  := FIELD op value | FIELD ["NOT"] "IN" "(" value ("," value)* ")"
    op         := ">" | ">=" | "<" | "<=" | "=" | "!="
    value      := INT | STRING

Integer fields take integers (signed 64-bit) and all six operators; string fields
take double-quoted strings (escapes ``\\"`` and ``\\\\``) and only ``=``/``!=``.
An empty or whitespace-only filter means "no filter": :func:`parse_filter` returns None.

The parser keeps parenthesised groups as written (``(a AND b) AND c`` is an And
inside an And) and flattens only chains at one level, so :func:`to_text` can
reproduce any tree exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, NoReturn, TypeAlias, cast

from lookalike.domain.attributes import INT64_MAX as INT64_MAX
from lookalike.domain.attributes import INT64_MIN as INT64_MIN
from lookalike.domain.attributes import INT_SLOTS, STR_SLOTS
from lookalike.domain.errors import INVALID_FILTER_CLAUSE, LookalikeError

# A filter names the attribute slots by their names (int_attr, str_attr2, ...).
INT_FIELDS: Final[frozenset[str]] = frozenset(slot.name for slot in INT_SLOTS)
STR_FIELDS: Final[frozenset[str]] = frozenset(slot.name for slot in STR_SLOTS)

INT_OPS: Final[frozenset[str]] = frozenset({">", ">=", "<", "<=", "=", "!="})
STR_OPS: Final[frozenset[str]] = frozenset({"=", "!="})

MAX_FILTER_LENGTH: Final = 4096
# Recursion guard: 4096 characters of "(" would otherwise overflow Python's stack.
MAX_NESTING_DEPTH: Final = 32


class FilterSyntaxError(LookalikeError):
    """A filter that does not parse or type-check; ``position`` is the 0-based offset of the fault."""

    def __init__(self, message: str, position: int, found: str | None = None) -> None:
        detail = f" (found {found})" if found else ""
        super().__init__(INVALID_FILTER_CLAUSE, f"{message} at position {position}{detail}")
        self.position = position


# --- AST -------------------------------------------------------------------------------------------


def _check_value(field: str, value: object) -> None:
    # bool is an int subclass; True must not sneak in as 1.
    if field in INT_FIELDS:
        if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{field} needs a signed 64-bit int, got {value!r}")
    elif field in STR_FIELDS:
        if type(value) is not str:
            raise ValueError(f"{field} needs a str, got {value!r}")
    else:
        raise ValueError(f"unknown filter field {field!r}")


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``; construction checks the field, operator and value agree."""

    field: str
    op: str
    value: int | str

    def __post_init__(self) -> None:
        _check_value(self.field, self.value)
        if self.op not in (INT_OPS if self.field in INT_FIELDS else STR_OPS):
            raise ValueError(f"operator {self.op!r} is not allowed on {self.field}")


@dataclass(frozen=True, slots=True)
class InList:
    """``field [not] in (v1, v2, ...)``; at least one value, all of the field's type."""

    field: str
    values: tuple[int, ...] | tuple[str, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("an in-list needs at least one value")
        for value in self.values:
            _check_value(self.field, value)


@dataclass(frozen=True, slots=True)
class And:
    """Conjunction of two or more nodes (one item would not survive a text round trip)."""

    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        if len(self.items) < 2:
            raise ValueError("And needs at least two items")


@dataclass(frozen=True, slots=True)
class Or:
    """Disjunction of two or more nodes."""

    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        if len(self.items) < 2:
            raise ValueError("Or needs at least two items")


Node: TypeAlias = Compare | InList | And | Or


# --- Tokenizer -------------------------------------------------------------------------------------

_DIGITS: Final = "0123456789"  # ASCII only: str.isdigit() would accept e.g. Arabic-Indic digits
_DIGIT_SET: Final = frozenset(_DIGITS)
_IDENT_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_" + _DIGITS)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ident", "int", "str", "op", "(", ")", ",", "end"
    text: str  # source text (for messages)
    pos: int
    value: int | str | None = None

    def describe(self) -> str:
        if self.kind == "end":
            return "end of filter"
        shown = self.text if len(self.text) <= 32 else self.text[:29] + "..."
        return repr(shown)

    def is_keyword(self, word: str) -> bool:
        return self.kind == "ident" and self.text.upper() == word


def _tokens(text: str) -> Iterator[_Token]:
    """Lex lazily so the first fault in reading order is the one reported."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            yield _Token("end", "", n)
            return
        c = text[i]
        start = i
        if c in "(),":
            i += 1
            yield _Token(c, c, start)
        elif c in "<>":
            i += 2 if text.startswith("=", i + 1) else 1
            yield _Token("op", text[start:i], start)
        elif c == "=":
            i += 1
            yield _Token("op", "=", start)
        elif c == "!":
            if not text.startswith("=", i + 1):
                raise FilterSyntaxError("Unexpected character '!' (did you mean '!='?)", start)
            i += 2
            yield _Token("op", "!=", start)
        elif c in _DIGITS or (c == "-" and text[i + 1 : i + 2] in _DIGIT_SET):
            i += 1
            while i < n and text[i] in _DIGITS:
                i += 1
            if i < n and text[i] in _IDENT_CHARS:
                raise FilterSyntaxError(f"Invalid number {text[start : i + 1]!r}", start)
            digits = text[start:i]
            # Length check first: int() on thousands of digits is slow and capped by Python.
            number = int(digits) if len(digits.lstrip("-").lstrip("0")) <= 19 else INT64_MAX + 1
            if not INT64_MIN <= number <= INT64_MAX:
                raise FilterSyntaxError(f"Integer {digits} is out of the signed 64-bit range", start)
            yield _Token("int", digits, start, number)
        elif c == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise FilterSyntaxError("Unclosed string starting", start)
                ch = text[i]
                if ch == '"':
                    i += 1
                    break
                if ch == "\\":
                    escaped = text[i + 1 : i + 2]
                    if escaped not in ('"', "\\"):
                        raise FilterSyntaxError('Invalid escape in string (only \\" and \\\\ are allowed)', i)
                    chars.append(escaped)
                    i += 2
                else:
                    chars.append(ch)
                    i += 1
            yield _Token("str", text[start:i], start, "".join(chars))
        elif c in _IDENT_CHARS:
            while i < n and text[i] in _IDENT_CHARS:
                i += 1
            yield _Token("ident", text[start:i], start)
        else:
            raise FilterSyntaxError(f"Unexpected character {c!r}", start)


# --- Parser ----------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self._lexer = _tokens(text)
        self._tok = next(self._lexer)
        self._depth = 0

    def _advance(self) -> _Token:
        tok = self._tok
        if tok.kind != "end":
            self._tok = next(self._lexer)
        return tok

    def _fail(self, message: str, tok: _Token) -> NoReturn:
        raise FilterSyntaxError(message, tok.pos, tok.describe())

    def parse(self) -> Node:
        node = self._or_expr()
        if self._tok.kind != "end":
            self._fail("Expected AND, OR or the end of the filter", self._tok)
        return node

    def _or_expr(self) -> Node:
        items = [self._and_expr()]
        while self._tok.is_keyword("OR"):
            self._advance()
            items.append(self._and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and_expr(self) -> Node:
        items = [self._primary()]
        while self._tok.is_keyword("AND"):
            self._advance()
            items.append(self._primary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _primary(self) -> Node:
        tok = self._tok
        if tok.kind == "(":
            if self._depth >= MAX_NESTING_DEPTH:
                raise FilterSyntaxError(f"Parentheses nested deeper than {MAX_NESTING_DEPTH}", tok.pos)
            self._advance()
            self._depth += 1
            node = self._or_expr()
            self._depth -= 1
            if self._tok.kind == "end":
                raise FilterSyntaxError("Unclosed '('", tok.pos)
            if self._tok.kind != ")":
                self._fail("Expected ')', AND or OR", self._tok)
            self._advance()
            return node
        return self._condition()

    def _condition(self) -> Node:
        tok = self._tok
        if tok.kind != "ident" or tok.text.upper() in ("AND", "OR", "NOT", "IN"):
            self._fail("Expected a field name or '('", tok)
        field = tok.text.lower()
        if field not in INT_FIELDS and field not in STR_FIELDS:
            raise FilterSyntaxError(f"Unknown field {tok.text!r}", tok.pos)
        self._advance()
        op_tok = self._tok
        if op_tok.kind == "op":
            allowed = INT_OPS if field in INT_FIELDS else STR_OPS
            if op_tok.text not in allowed:
                raise FilterSyntaxError(
                    f"Operator {op_tok.text!r} is not allowed on string field {field!r}", op_tok.pos
                )
            self._advance()
            return Compare(field, op_tok.text, self._value(field, f"after {op_tok.text!r}"))
        negated = op_tok.is_keyword("NOT")
        if negated:
            self._advance()
            if not self._tok.is_keyword("IN"):
                self._fail("Expected IN after NOT", self._tok)
        elif not op_tok.is_keyword("IN"):
            self._fail(f"Expected an operator after {tok.text!r}", op_tok)
        self._advance()
        if self._tok.kind != "(":
            self._fail("Expected '(' after IN", self._tok)
        self._advance()
        if self._tok.kind == ")":
            raise FilterSyntaxError("Empty IN list", self._tok.pos)
        values = [self._value(field, "in the IN list")]
        while self._tok.kind == ",":
            self._advance()
            values.append(self._value(field, "after ','"))
        if self._tok.kind != ")":
            self._fail("Expected ',' or ')' in the IN list", self._tok)
        self._advance()
        # The field's type is checked per value, so the tuple is homogeneous.
        return InList(field, cast("tuple[int, ...] | tuple[str, ...]", tuple(values)), negated)

    def _value(self, field: str, where: str) -> int | str:
        tok = self._tok
        wanted = "an integer" if field in INT_FIELDS else "a double-quoted string"
        if tok.kind not in ("int", "str"):
            self._fail(f"Expected {wanted} {where}", tok)
        if (tok.kind == "int") != (field in INT_FIELDS):
            given = "an integer" if tok.kind == "int" else "a string"
            raise FilterSyntaxError(f"Field {field!r} takes {wanted}, not {given}", tok.pos)
        self._advance()
        assert tok.value is not None  # int and str tokens always carry their value
        return tok.value


def parse_filter(text: str | None) -> Node | None:
    """Parse a filter expression; None, empty or whitespace-only text means "no filter" (None).

    Raises FilterSyntaxError (a LookalikeError with code InvalidFilterClause) naming the
    fault and its 0-based character position.
    """
    if text is None:
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(f"Filter is longer than {MAX_FILTER_LENGTH} characters", MAX_FILTER_LENGTH)
    if not text.strip():
        return None
    return _Parser(text).parse()


# --- Evaluation and rendering ----------------------------------------------------------------------


def _compare(op: str, left: int | str, right: int | str) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    # The AST allows ordering operators on int fields only.
    if not (isinstance(left, int) and isinstance(right, int)):
        raise TypeError(f"operator {op!r} needs integers, got {left!r} and {right!r}")
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    raise ValueError(f"unknown operator {op!r}")


def evaluate(node: Node, attrs: Mapping[str, int | str]) -> bool:
    """Does a record with these attributes match? ``attrs`` maps every referenced field name
    to its value (unset ints are 0, unset strings ""); a missing key raises KeyError."""
    if isinstance(node, Compare):
        return _compare(node.op, attrs[node.field], node.value)
    if isinstance(node, InList):
        return (attrs[node.field] in node.values) != node.negated
    if isinstance(node, And):
        return all(evaluate(item, attrs) for item in node.items)
    return any(evaluate(item, attrs) for item in node.items)


def _quote(value: int | str) -> str:
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_text(node: Node) -> str:
    """Canonical text for a tree; ``parse_filter(to_text(n)) == n`` whenever it fits 4096 characters."""
    if isinstance(node, Compare):
        return f"{node.field} {node.op} {_quote(node.value)}"
    if isinstance(node, InList):
        keyword = "not in" if node.negated else "in"
        return f"{node.field} {keyword} ({', '.join(_quote(v) for v in node.values)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    # Every nested And/Or is parenthesised: that keeps the grouping exactly as in the tree.
    return joiner.join(
        f"({to_text(item)})" if isinstance(item, And | Or) else to_text(item) for item in node.items
    )


def referenced_fields(node: Node) -> set[str]:
    """The field names a tree reads."""
    if isinstance(node, Compare | InList):
        return {node.field}
    fields: set[str] = set()
    for item in node.items:
        fields |= referenced_fields(item)
    return fields
