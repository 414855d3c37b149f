"""Compile a filter tree (lookalike.domain.filters) into a Milvus boolean expression.

The Milvus collection stores the same field names as SQL (the attribute slots of lookalike.domain.attributes:
the int slots INT64, the str slots VARCHAR; category_id INT64), so a Compare on ``int_attr`` becomes
``int_attr ...`` verbatim; field names come from the AST (a fixed set), never from user text.

Quirks of the Milvus expression parser, all found against a real 2.3.5 server (tests/test_milvus_index.py
checks every compiled tree against the Python evaluator):

* string literals are Go-quoted: ``\\`` and ``"`` need a backslash; a raw newline ends the token, so C0
  control characters are written as ``\\u00XX``; other non-ASCII text is passed through raw (the parser
  rejects ``\\u`` surrogate pairs, so astral characters cannot be escaped);
* the integer literal ``-9223372036854775808`` (INT64_MIN) does not parse (it is read as minus
  9223372036854775808, which overflows), so comparisons with it are rewritten through INT64_MIN + 1;
* there is no ``true``/``false`` condition, so an always-true or always-false comparison is spelled as a
  tautology / contradiction on the same field.
"""

from __future__ import annotations

from typing import Final

from lookalike.domain.filters import INT64_MIN, And, Compare, InList, Node

_MIN_PLUS_1: Final = str(INT64_MIN + 1)
_OPS: Final = {"=": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def quote_string(value: str) -> str:
    """A Milvus (Go) double-quoted string literal for ``value``."""
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _literal(value: int | str) -> str:
    return str(value) if isinstance(value, int) else quote_string(value)


def _compare_min(field: str, op: str) -> str:
    """``field op INT64_MIN`` without writing INT64_MIN (x = MIN is x < MIN + 1, and so on)."""
    below = f"{field} < {_MIN_PLUS_1}"  # x == MIN
    above = f"{field} >= {_MIN_PLUS_1}"  # x != MIN
    if op in ("=", "<="):
        return below
    if op in ("!=", ">"):
        return above
    if op == ">=":
        return f"({below} or {above})"  # always true
    if op == "<":
        return f"({below} and {above})"  # always false
    raise ValueError(f"unknown operator {op!r}")


def _in_list(node: InList) -> str:
    has_min = INT64_MIN in node.values and isinstance(node.values[0], int)
    values = [v for v in node.values if not (has_min and v == INT64_MIN)]
    keyword = "not in" if node.negated else "in"
    listed = f"{node.field} {keyword} [{', '.join(_literal(v) for v in values)}]" if values else None
    if not has_min:
        assert listed is not None
        return listed
    min_part = _compare_min(node.field, "!=" if node.negated else "=")
    if listed is None:
        return min_part
    return f"({listed} {'and' if node.negated else 'or'} {min_part})"


def compile_filter(node: Node) -> str:
    """A Milvus expression true exactly where ``evaluate(node, attrs)`` is."""
    if isinstance(node, Compare):
        if node.op not in _OPS:
            raise ValueError(f"unknown operator {node.op!r}")
        if node.value == INT64_MIN and isinstance(node.value, int):
            return _compare_min(node.field, node.op)
        return f"{node.field} {_OPS[node.op]} {_literal(node.value)}"
    if isinstance(node, InList):
        return _in_list(node)
    joiner = " and " if isinstance(node, And) else " or "
    # Every operand is parenthesised: Milvus' precedence then never matters.
    return joiner.join(f"({compile_filter(item)})" for item in node.items)
