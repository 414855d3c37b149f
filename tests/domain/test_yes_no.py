"""Yes/no and text fields as clients send them (lookalike.domain.loose_values): one reader, own words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lookalike.domain.loose_values import (
    ALIBABA_YES_NO,
    CONFIG_YES_NO,
    JSON_YES_NO,
    REST_YES_NO,
    YesNo,
    parse_bool,
    parse_text,
)

VOCABULARIES = [JSON_YES_NO, ALIBABA_YES_NO, REST_YES_NO, CONFIG_YES_NO]
vocabularies = st.sampled_from(VOCABULARIES)
blank = st.text(" \t\r\n", max_size=3)


def test_each_readers_words_are_what_its_clients_have_always_sent() -> None:
    # Pinned: a word dropped breaks a client; a word added changes what a typo means. Each widens the last.
    assert (JSON_YES_NO.true, JSON_YES_NO.false) == ({"true"}, {"false"})
    assert (ALIBABA_YES_NO.true, ALIBABA_YES_NO.false) == ({"true", "1"}, {"false", "0"})
    assert (REST_YES_NO.true, REST_YES_NO.false) == ({"true", "1", "yes"}, {"false", "0", "no"})
    assert (CONFIG_YES_NO.true, CONFIG_YES_NO.false) == (
        {"true", "1", "yes", "on"},
        {"false", "0", "no", "off"},
    )
    for words in VOCABULARIES:
        assert not words.true & words.false


@given(vocabularies, st.booleans())
def test_a_json_boolean_is_itself_in_every_reader(words: YesNo, value: bool) -> None:
    assert parse_bool(value, words) is value


@given(vocabularies, st.data(), blank, blank)
def test_a_word_reads_in_any_case_with_blanks_around(
    words: YesNo, data: st.DataObject, left: str, right: str
) -> None:
    answer = data.draw(st.booleans())
    word = data.draw(st.sampled_from(sorted(words.true if answer else words.false)))
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in word)
    assert parse_bool(left + cased + right, words) is answer


@given(vocabularies, st.text(max_size=12) | st.integers() | st.floats() | st.none() | st.lists(st.booleans()))
def test_anything_else_is_refused(words: YesNo, value: object) -> None:
    known = words.true | words.false
    if str(value).strip().lower() in known:  # e.g. the integer 1 where "1" is a word: read as its text
        assert parse_bool(value, words) is (str(value).strip().lower() in words.true)
        return
    with pytest.raises(ValueError):
        parse_bool(value, words)


def test_the_readers_differ_where_their_clients_do() -> None:
    assert parse_bool(1, REST_YES_NO) is True and parse_bool("0", ALIBABA_YES_NO) is False
    for text in ("1", "yes"):
        with pytest.raises(ValueError):
            parse_bool(text, JSON_YES_NO)  # a manifest's crop is a JSON boolean
    with pytest.raises(ValueError):
        parse_bool("yes", ALIBABA_YES_NO)  # the SDKs never send it
    with pytest.raises(ValueError):
        parse_bool("on", REST_YES_NO)
    assert parse_bool(" OFF ", CONFIG_YES_NO) is False


@given(st.text() | st.integers())
def test_text_fields_take_strings_and_unquoted_whole_numbers(value: str | int) -> None:
    assert parse_text(value) == str(value)


def test_an_absent_text_field_is_empty_and_other_json_is_refused() -> None:
    assert parse_text(None) == ""
    for value in (True, False, 1.5, 2.0, [], {}, ["a"]):
        with pytest.raises(ValueError):
            parse_text(value)
