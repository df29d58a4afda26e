"""Escaping and splitting under Telegram's message limit."""

from __future__ import annotations

import pytest

from services.bot.formatting import (
    MESSAGE_LIMIT,
    compose,
    escape,
    join_lines,
    settled_pieces,
    split_text,
    telegram_length,
)


def test_escape_leaves_quotes_and_escapes_markup() -> None:
    assert escape('a < b && c > "d"') == 'a &lt; b &amp;&amp; c &gt; "d"'


def test_telegram_length_counts_parsed_text_in_utf16_units() -> None:
    assert telegram_length("<b>a&lt;b</b>") == 3
    assert telegram_length("😀x") == 3


def test_short_text_is_one_piece() -> None:
    assert split_text("hello\n\nworld") == ["hello\n\nworld"]


def test_prefers_paragraphs_then_lines_then_spaces() -> None:
    assert split_text("aaaa bbbb\ncccc\n\ndddd", limit=16) == ["aaaa bbbb\ncccc", "dddd"]
    assert split_text("aaaa bbbb\ncccc dddd", limit=16) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("aaaa bbbb cccc dddd", limit=16) == ["aaaa bbbb cccc", "dddd"]


def test_a_break_early_in_the_window_is_not_used() -> None:
    text = "ab\n\n" + "x" * 30 + " " + "y" * 5
    assert split_text(text, limit=20)[0] == "ab\n\n" + "x" * 16


def test_words_longer_than_the_limit_are_cut_hard() -> None:
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_emoji_count_two_and_are_never_split() -> None:
    pieces = split_text("😀" * 12, limit=10)
    assert pieces == ["😀" * 5, "😀" * 5, "😀" * 2]


def test_indentation_after_a_cut_is_kept() -> None:
    text = "def f():\n" + "    return 1\n" * 3
    pieces = split_text(text, limit=30)
    assert pieces[1].startswith("    return 1")
    assert all(len(p) <= 30 for p in pieces)


def test_every_piece_fits_and_nothing_is_lost() -> None:
    text = "\n".join(f"line {i} <&> " + "z" * (i % 50) for i in range(400))
    pieces = split_text(text)
    assert len(pieces) > 1
    assert all(telegram_length(escape(p)) <= MESSAGE_LIMIT for p in pieces)
    assert "\n".join(pieces) == text


def test_settled_pieces_never_change_as_the_text_grows() -> None:
    # "abcdef\n\nghij" fits exactly: the second "\n" after it decides where the cut goes.
    text = (
        "abcdef\n\nghij\n\n" + "ab cd\n\nefgh ij\nkl 😀😀 mn\n\n\nop qrstuvwxyz0123456789 x\n" * 6
    )
    whole = split_text(text, limit=12)
    settled_before: list[str] = []
    for end in range(len(text) + 1):
        settled, rest = settled_pieces(text[:end], limit=12)
        assert whole[: len(settled)] == settled
        assert settled[: len(settled_before)] == settled_before
        assert [*settled, *split_text(rest, limit=12)] == split_text(text[:end], limit=12)
        settled_before = settled
    assert len(settled_before) == len(whole) - 1


def test_limit_must_leave_room() -> None:
    with pytest.raises(ValueError, match="at least"):
        split_text("abc", limit=3)


def test_footer_joins_the_last_piece_or_stands_alone() -> None:
    assert compose("a<b", "<i>f</i>") == ["a&lt;b\n\n<i>f</i>"]
    assert compose("x" * 18, "<i>footer</i>", limit=20) == ["x" * 18, "<i>footer</i>"]
    assert compose("", "<i>f</i>") == ["<i>f</i>"]


def test_join_lines_packs_whole_lines() -> None:
    assert join_lines(["aaaa", "bbbb", "cccc"], limit=10) == ["aaaa\nbbbb", "cccc"]
