"""Parser, evaluator and renderer of the filter language (lookalike.domain.filters)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lookalike.domain.errors import INVALID_FILTER_CLAUSE, LookalikeError
from lookalike.domain.filters import (
    INT_FIELDS,
    STR_FIELDS,
    And,
    Compare,
    FilterSyntaxError,
    InList,
    Node,
    Or,
    evaluate,
    parse_filter,
    referenced_fields,
    to_text,
)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def c(field: str, op: str, value: int | str) -> Compare:
    return Compare(field, op, value)


# --- Parsing: the happy paths ---------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", " ", "  \t\n  "])
def test_empty_filter_means_no_filter(text: str | None) -> None:
    assert parse_filter(text) is None


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "=", "!="])
def test_each_int_operator(op: str) -> None:
    assert parse_filter(f"int_attr {op} 100") == c("int_attr", op, 100)
    assert parse_filter(f"int_attr4{op}-7") == c("int_attr4", op, -7)


@pytest.mark.parametrize("op", ["=", "!="])
def test_each_string_operator(op: str) -> None:
    assert parse_filter(f'str_attr {op} "value1"') == c("str_attr", op, "value1")
    assert parse_filter(f'str_attr3{op}"v"') == c("str_attr3", op, "v")


def test_in_and_not_in() -> None:
    assert parse_filter("int_attr in (1, 2, 3)") == InList("int_attr", (1, 2, 3), False)
    assert parse_filter("int_attr2 not in(-1,2)") == InList("int_attr2", (-1, 2), True)
    assert parse_filter('str_attr in ("a","b")') == InList("str_attr", ("a", "b"), False)
    assert parse_filter('str_attr4 NOT IN ( "x" )') == InList("str_attr4", ("x",), True)


def test_all_fields_are_known() -> None:
    assert {"int_attr", "int_attr2", "int_attr3", "int_attr4"} == INT_FIELDS
    assert {"str_attr", "str_attr2", "str_attr3", "str_attr4"} == STR_FIELDS
    for field in INT_FIELDS:
        assert parse_filter(f"{field} = 1") == c(field, "=", 1)
    for field in STR_FIELDS:
        assert parse_filter(f'{field} = "1"') == c(field, "=", "1")


def test_official_example() -> None:
    text = '(int_attr >= 100000000 AND int_attr < 200000000 AND int_attr=100000252 AND str_attr="87")'
    assert parse_filter(text) == And(
        (
            c("int_attr", ">=", 100000000),
            c("int_attr", "<", 200000000),
            c("int_attr", "=", 100000252),
            c("str_attr", "=", "87"),
        )
    )


def test_documented_examples() -> None:
    assert parse_filter("int_attr >= 100") == c("int_attr", ">=", 100)
    assert parse_filter('str_attr != "value1"') == c("str_attr", "!=", "value1")
    assert parse_filter('int_attr = 1000 AND str_attr = "value1"') == And(
        (c("int_attr", "=", 1000), c("str_attr", "=", "value1"))
    )


def test_and_binds_tighter_than_or() -> None:
    a, b, d = c("int_attr", "=", 1), c("int_attr", "=", 2), c("int_attr", "=", 3)
    assert parse_filter("int_attr = 1 OR int_attr = 2 AND int_attr = 3") == Or((a, And((b, d))))
    assert parse_filter("int_attr = 1 AND int_attr = 2 OR int_attr = 3") == Or((And((a, b)), d))


def test_parentheses_override_precedence_and_keep_grouping() -> None:
    a, b, d = c("int_attr", "=", 1), c("int_attr", "=", 2), c("int_attr", "=", 3)
    assert parse_filter("(int_attr = 1 OR int_attr = 2) AND int_attr = 3") == And((Or((a, b)), d))
    # Groups are kept as written, chains at one level are flattened.
    assert parse_filter("(int_attr = 1 AND int_attr = 2) AND int_attr = 3") == And((And((a, b)), d))
    assert parse_filter("int_attr = 1 AND int_attr = 2 AND int_attr = 3") == And((a, b, d))
    assert parse_filter("((int_attr = 1))") == a
    assert parse_filter("(((int_attr=1)OR(int_attr=2)))") == Or((a, b))


def test_keywords_and_fields_are_case_insensitive() -> None:
    node = parse_filter('INT_ATTR = 1 and Str_Attr NoT In ("a") oR int_attr iN (2)')
    assert node == Or(
        (
            And((c("int_attr", "=", 1), InList("str_attr", ("a",), True))),
            InList("int_attr", (2,), False),
        )
    )


def test_whitespace_is_optional_and_may_be_any_kind() -> None:
    assert parse_filter("int_attr>=100") == c("int_attr", ">=", 100)
    assert parse_filter("int_attr<-5") == c("int_attr", "<", -5)
    assert parse_filter('str_attr!="x"AND int_attr=1') == And(
        (c("str_attr", "!=", "x"), c("int_attr", "=", 1))
    )
    assert parse_filter("\n\tint_attr\t=\n1\r\n") == c("int_attr", "=", 1)


def test_unicode_strings() -> None:
    assert parse_filter('str_attr = "红色 T恤"') == c("str_attr", "=", "红色 T恤")
    assert parse_filter('str_attr in ("é", "🙂", "")') == InList("str_attr", ("é", "🙂", ""), False)


def test_escapes_in_strings() -> None:
    assert parse_filter(r'str_attr = "say \"hi\""') == c("str_attr", "=", 'say "hi"')
    assert parse_filter(r'str_attr = "back\\slash"') == c("str_attr", "=", "back\\slash")
    assert parse_filter(r'str_attr = "\\"') == c("str_attr", "=", "\\")
    # Keywords and operators inside a string are just text.
    assert parse_filter('str_attr = "a AND (b) OR c >= 1"') == c("str_attr", "=", "a AND (b) OR c >= 1")


def test_int64_bounds() -> None:
    assert parse_filter(f"int_attr = {INT64_MIN}") == c("int_attr", "=", INT64_MIN)
    assert parse_filter(f"int_attr = {INT64_MAX}") == c("int_attr", "=", INT64_MAX)
    assert parse_filter("int_attr = 007") == c("int_attr", "=", 7)
    assert parse_filter("int_attr = -0") == c("int_attr", "=", 0)


def test_filter_of_exactly_4096_characters_is_accepted() -> None:
    text = "int_attr = 1" + " " * (4096 - len("int_attr = 1"))
    assert len(text) == 4096
    assert parse_filter(text) == c("int_attr", "=", 1)


# --- Parsing: errors ------------------------------------------------------------------------------

BAD_FILTERS: list[tuple[str, int]] = [
    ("int_attr1 = 5", 0),  # unknown field: the first slot has no number
    ('str_attr1 = "a"', 0),
    ("colour = 5", 0),
    ("int_attr foo", 9),  # missing operator
    ("int_attr ", 9),
    ("int_attr", 8),
    ("int_attr 5", 9),
    ("int_attr >=", 11),  # missing value
    ("int_attr = AND", 11),
    ("(int_attr = 1", 0),  # unclosed paren
    ("((int_attr = 1) AND (int_attr = 2)", 0),
    ("(int_attr = 1 int_attr = 2)", 14),
    ('str_attr = "abc', 11),  # unclosed string
    ('str_attr = "abc\\"', 11),
    ("int_attr = 1 foo", 13),  # trailing garbage
    ("int_attr = 1)", 12),
    ("int_attr = 1 AND", 16),
    ("int_attr = 1 AND AND int_attr = 2", 17),
    ("OR int_attr = 1", 0),
    ('str_attr > "a"', 9),  # ordering operator on a string field
    ('str_attr<="a"', 8),
    ('int_attr = "5"', 11),  # type mismatch
    ("str_attr = 5", 11),
    ('int_attr in (1, "a")', 16),
    ('str_attr not in ("a", 2)', 22),
    ("int_attr in ()", 13),  # empty in-list
    ("int_attr in (1,)", 15),
    ("int_attr in (1 2)", 15),
    ("int_attr in 1", 12),
    ("int_attr in (1", 14),
    ("int_attr not (1)", 13),
    ("int_attr not", 12),
    ("int_attr = 99999999999999999999", 11),  # out of int64
    (f"int_attr = {INT64_MAX + 1}", 11),
    (f"int_attr < {INT64_MIN - 1}", 11),
    ("int_attr = 12abc", 11),
    ("int_attr == 1", 10),
    ("int_attr <> 1", 10),
    ("int_attr ! 1", 9),
    ("int_attr = - 5", 11),
    ("int_attr = 1 & int_attr = 2", 13),
    ("int_attr = 1 && int_attr = 2", 13),
    ("int_attr = 'a'", 11),
    ('str_attr = "a\\nb"', 13),  # only \" and \\ are escapes
    ("int_attr = ١", 11),  # non-ASCII digits are not digits here
    ("()", 1),
    ("(", 1),
    (")", 0),
    ("int_attr = 1 OR (", 17),
    ("NOT int_attr = 1", 0),
    ("x" * 4097, 4096),  # too long
    ("(" * 40 + "int_attr = 1" + ")" * 40, 32),  # nested too deeply
]


@pytest.mark.parametrize(("text", "position"), BAD_FILTERS)
def test_bad_filters_report_the_position(text: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    err = info.value
    assert isinstance(err, LookalikeError)
    assert err.code == INVALID_FILTER_CLAUSE
    assert err.http_status == 400
    assert err.position == position
    assert f"at position {position}" in err.message


def test_error_message_names_the_fault() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("int_attr foo")
    assert info.value.message == "Expected an operator after 'int_attr' at position 9 (found 'foo')"
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("int_attr1 = 1")
    assert info.value.message == "Unknown field 'int_attr1' at position 0"


def test_first_fault_in_reading_order_wins() -> None:
    # The tokenizer is lazy, so a bad string later on does not mask the missing operator.
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter('int_attr foo str_attr = "unclosed')
    assert info.value.position == 9


def test_very_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(FilterSyntaxError):
        parse_filter("(" * 4000)


# --- The tree itself ------------------------------------------------------------------------------


def test_nodes_are_immutable_and_hashable() -> None:
    node = parse_filter('int_attr = 1 AND str_attr in ("a")')
    assert node is not None
    with pytest.raises(AttributeError):
        node.items = ()  # type: ignore[misc, union-attr]
    assert hash(node) == hash(parse_filter('int_attr=1 and str_attr IN("a")'))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Compare("str_attr", ">", "a"),
        lambda: Compare("int_attr", "=", "1"),
        lambda: Compare("str_attr", "=", 1),
        lambda: Compare("int_attr", "=", True),
        lambda: Compare("int_attr", "=", 2**63),
        lambda: Compare("int_attr1", "=", 1),
        lambda: Compare("int_attr", "==", 1),
        lambda: InList("int_attr", (), False),
        lambda: InList("int_attr", (1, "a"), False),  # type: ignore[arg-type]
        lambda: And((Compare("int_attr", "=", 1),)),
        lambda: Or(()),
    ],
)
def test_invalid_trees_cannot_be_built(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_referenced_fields() -> None:
    node = parse_filter('int_attr = 1 OR (str_attr3 in ("a") AND int_attr4 > 2 AND int_attr < 9)')
    assert node is not None
    assert referenced_fields(node) == {"int_attr", "str_attr3", "int_attr4"}


def test_to_text_is_canonical() -> None:
    node = parse_filter('INT_ATTR>=1 and (str_attr NOT IN ("a\\"b","\\\\") or int_attr2 in (1,2))')
    assert node is not None
    assert to_text(node) == 'int_attr >= 1 AND (str_attr not in ("a\\"b", "\\\\") OR int_attr2 in (1, 2))'


# --- Evaluation -----------------------------------------------------------------------------------

RECORD: dict[str, int | str] = {
    "int_attr": 150,
    "int_attr2": -3,
    "int_attr3": 0,
    "int_attr4": 0,
    "str_attr": "红色 T恤",
    "str_attr2": "Red",
    "str_attr3": "",
    "str_attr4": "",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int_attr > 149", True),
        ("int_attr > 150", False),
        ("int_attr >= 150", True),
        ("int_attr < 150", False),
        ("int_attr <= 150", True),
        ("int_attr = 150", True),
        ("int_attr != 150", False),
        ("int_attr2 < 0", True),
        ("int_attr in (1, 150)", True),
        ("int_attr not in (1, 150)", False),
        ('str_attr = "红色 T恤"', True),
        ('str_attr2 = "red"', False),  # exact, case-sensitive
        ('str_attr2 != "red"', True),
        ('str_attr3 = ""', True),  # unset string
        ("int_attr3 = 0", True),  # unset int
        ('str_attr2 in ("Red", "Blue")', True),
        ('str_attr2 not in ("Red", "Blue")', False),
        ('int_attr = 1 OR int_attr = 150 AND str_attr2 = "Red"', True),
        ('(int_attr = 1 OR int_attr = 150) AND str_attr2 = "Blue"', False),
    ],
)
def test_evaluate(text: str, expected: bool) -> None:
    node = parse_filter(text)
    assert node is not None
    assert evaluate(node, RECORD) is expected


# --- Properties -----------------------------------------------------------------------------------

int64s = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
texts = st.text(max_size=8)


int_fields = st.sampled_from(sorted(INT_FIELDS))
str_fields = st.sampled_from(sorted(STR_FIELDS))

leaves: st.SearchStrategy[Node] = st.one_of(
    st.builds(Compare, int_fields, st.sampled_from([">", ">=", "<", "<=", "=", "!="]), int64s),
    st.builds(Compare, str_fields, st.sampled_from(["=", "!="]), texts),
    st.builds(InList, int_fields, st.lists(int64s, min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(InList, str_fields, st.lists(texts, min_size=1, max_size=3).map(tuple), st.booleans()),
)


def _branches(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    items = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(And, items), st.builds(Or, items))


trees: st.SearchStrategy[Node] = st.recursive(leaves, _branches, max_leaves=8)


@settings(max_examples=200)
@given(trees)
def test_to_text_round_trips(node: Node) -> None:
    text = to_text(node)
    assume(len(text) <= 4096)
    assert parse_filter(text) == node


TOKENS = [
    "int_attr", "int_attr2", "str_attr", "str_attr4", "int_attr1", "AND", "and", "OR", "NOT", "in",
    "IN", "(", ")", ",", ">", ">=", "<", "<=", "=", "!=", "!", "==", "0", "-1", "-", "42",
    "99999999999999999999", '"a"', '"', '"\\"', "\\", '"红"', "'x'", " ", "\t", "",
]  # fmt: skip


token_soup = st.lists(st.sampled_from(TOKENS), max_size=25)
# Raw text finds lexer faults; token soup gets deep enough to reach the parser's faults.
fuzz_texts = st.one_of(st.text(max_size=60), token_soup.map(" ".join), token_soup.map("".join))


@settings(max_examples=300)
@given(fuzz_texts)
def test_fuzz_only_filter_errors(text: str) -> None:
    try:
        node = parse_filter(text)
    except FilterSyntaxError as err:
        assert err.code == INVALID_FILTER_CLAUSE
        assert 0 <= err.position <= len(text)
        return
    # Whatever parses must survive the canonical round trip too.
    if node is not None:
        assert parse_filter(to_text(node)) == node
