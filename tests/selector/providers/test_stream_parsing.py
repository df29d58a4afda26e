"""Reading a stream in pieces: Server-Sent Events cut anywhere, and reasoning stripped as it
arrives, with the same answer `strip_reasoning` finds in the whole text."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.selector.providers.answer import ReasoningFilter, strip_reasoning
from services.selector.providers.sse import Event, SseDecoder

GEMINI_STYLE = 'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n'
OPENAI_STYLE = ': OPENROUTER PROCESSING\n\ndata: {"a": 1}\n\nevent: x\nid: 7\ndata: [DONE]\n\n'
EXPECTED = {
    GEMINI_STYLE: [Event('{"a": 1}'), Event('{"b": 2}')],
    OPENAI_STYLE: [
        Event("OPENROUTER PROCESSING", comment=True),
        Event('{"a": 1}'),
        Event("[DONE]"),
    ],
}
ANSWERS = [
    "  The answer.  ",
    "<think>step one, step two</think>\n\nThe answer.",
    "<THINK>loud</THINK> The answer.",
    "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final"
    "<|message|>The answer.<|return|>",
    '<|channel|>final <|constrain|>json<|message|>{"a": 1}<|end|>',
    "x < y, and <b>bold</b> text",
    "<think>never closed",
    "<th",
    "",
]


def cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@pytest.mark.parametrize("stream", list(EXPECTED))
@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_events_are_the_same_wherever_the_bytes_are_cut(stream, cuts):
    decoder = SseDecoder(1024)
    raw = stream.encode()
    events = []
    for piece in cut(raw.decode("latin-1"), cuts):
        events += decoder.feed(piece.encode("latin-1"))

    assert events == EXPECTED[stream]


def test_multi_line_data_is_joined_and_a_utf8_character_may_be_cut():
    decoder = SseDecoder(1024)
    raw = "data: first\ndata: ünïcödé\n\n".encode()
    events = [e for i in range(len(raw)) for e in decoder.feed(raw[i : i + 1])]

    assert events == [Event("first\nünïcödé")]


def test_an_event_that_never_ends_is_refused_past_its_bound():
    decoder = SseDecoder(100)

    with pytest.raises(ValueError, match="longer than 100"):
        decoder.feed(b"data: " + b"x" * 200)


@pytest.mark.parametrize("answer", ANSWERS)
@given(cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=15))
def test_the_streamed_answer_is_what_strip_reasoning_finds_in_the_whole(answer, cuts):
    reasoning = ReasoningFilter()
    pieces = [reasoning.feed(piece) for piece in cut(answer, cuts)]
    pieces.append(reasoning.flush())

    assert "".join(pieces) == strip_reasoning(answer)


def test_a_piece_that_may_open_a_think_block_is_held_back_until_it_does_not():
    reasoning = ReasoningFilter()

    assert [reasoning.feed(p) for p in ["Hello", " wor", "ld ", "<thi", "s> tag"]] == [
        "Hello",
        " wor",
        "ld",
        "",
        " <this> tag",
    ]


def test_untagged_reasoning_is_held_until_its_closing_tag_ends_it():
    reasoning = ReasoningFilter(hold_untagged=True)

    assert reasoning.feed("First I think, ") == ""
    assert reasoning.feed("then I decide.</think>\n\nThe") == "The"
    assert reasoning.feed(" answer.") == " answer."
    assert reasoning.flush() == ""


def test_held_untagged_text_is_the_answer_when_no_closing_tag_comes():
    reasoning = ReasoningFilter(hold_untagged=True)

    assert reasoning.feed("Just the answer ") == ""
    assert reasoning.feed("here.") == ""
    assert reasoning.flush() == "Just the answer here."
