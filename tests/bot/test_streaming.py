"""Streamed answers through Dispatcher.feed_raw_update, against scripted StreamPrompt events.

The recording session answers like Telegram and refuses what Telegram refuses (a text a message
already shows, HTML it cannot parse, more than 4096 characters); the `chat` fixture checks at the
end of every test that the bot provoked no such refusal.
"""

from __future__ import annotations

import asyncio
import html
import itertools

import pytest

from aiselector.v1 import common_pb2
from services.bot import render
from services.bot.formatting import MESSAGE_LIMIT, telegram_length
from services.bot.selector_client import (
    DeadlinePassed,
    NothingAvailable,
    SelectorFailure,
    SelectorUnreachable,
)
from services.bot.streaming import CURSOR
from services.bot.texts import EN
from services.common import errors
from tests.bot.conftest import EDIT_INTERVAL, Chat
from tests.bot.fake_telegram import NOT_MODIFIED, ApiCall
from tests.fakes import Delta, Fail, Failover, Finish, ScriptedSelector, scripted_reply

CHAT = 501
FOOTER_EN = "<i>🤖 groq/llama-3.3-70b-versatile · groq · 2.3 s</i>"


def _deltas(pieces: list[str], every: float) -> list[Delta]:
    return [Delta(piece, delay=every if index else 0.0) for index, piece in enumerate(pieces)]


def _updates_of_the_one_message(chat: Chat) -> list[ApiCall]:
    [message_id] = chat.state.sent_to(CHAT)
    return chat.state.updates_of(message_id)


def _assert_spaced(updates: list[ApiCall]) -> None:
    """Each call that changed a message came at least the edit interval after the one before."""
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(updates)]
    assert all(gap >= EDIT_INTERVAL for gap in gaps), gaps


async def test_an_answer_grows_in_one_message_edited_no_faster_than_the_interval(
    chat: Chat, selector: ScriptedSelector
) -> None:
    words = [f"word{i} " for i in range(12)]
    answer = "".join(words).strip()
    # A delta every 0.05 s for 0.55 s: four times faster than the edit interval.
    selector.stream_scripts = [[*_deltas(words, 0.05), Finish(scripted_reply(answer))]]
    assert await chat.send("q", language_code="en") == [f"{answer}\n\n{FOOTER_EN}"]

    updates = _updates_of_the_one_message(chat)
    _assert_spaced(updates)
    growing = [c.params["text"] for c in updates[:-1]]
    assert len(growing) >= 2
    for text in growing:
        assert text.endswith(CURSOR)
        assert answer.startswith(text.removesuffix(CURSOR))
    assert [len(t) for t in growing] == sorted({len(t) for t in growing})


async def test_text_that_does_not_change_the_message_is_not_sent_again(
    chat: Chat, selector: ScriptedSelector
) -> None:
    # Whitespace alone changes nothing Telegram shows: editing for it would be refused with
    # "message is not modified" (the fixture checks none was provoked).
    pieces = ["Hello", " ", "\n", "  ", " world"]
    selector.stream_scripts = [[*_deltas(pieces, 0.25), Finish(scripted_reply("Hello \n   world"))]]
    await chat.send("q", language_code="en")
    updates = _updates_of_the_one_message(chat)
    texts = [c.params["text"] for c in updates]
    assert texts[0] == "Hello ▌"
    assert all(a.strip() != b.strip() for a, b in itertools.pairwise(texts))


async def test_telegram_finding_a_text_unchanged_is_taken_as_shown(
    chat: Chat, selector: ScriptedSelector
) -> None:
    selector.stream_scripts = [[Delta("Hi"), Finish(scripted_reply("Hi"), delay=0.05)]]
    chat.state.refuse("editMessageText", 400, NOT_MODIFIED)
    await chat.send("q", language_code="en")
    updates = _updates_of_the_one_message(chat)
    assert [c.error for c in chat.state.calls if c.method == "editMessageText"] == [NOT_MODIFIED]
    assert [c.method for c in updates] == ["sendMessage"]


async def test_a_long_answer_continues_in_a_second_message(
    chat: Chat, selector: ScriptedSelector
) -> None:
    paragraph = ("word <&> " * 40).strip()
    answer = "\n\n".join(f"{i:02d} {paragraph}" for i in range(14))
    assert telegram_length(html.escape(answer)) > MESSAGE_LIMIT
    pieces = [answer[start : start + 250] for start in range(0, len(answer), 250)]
    selector.stream_scripts = [[*_deltas(pieces, 0.03), Finish(scripted_reply(answer))]]
    texts = await chat.send("long", language_code="en")

    assert len(texts) == 2
    assert texts[1].endswith(f"\n\n{FOOTER_EN}")
    parts = [html.unescape(t) for t in texts]
    parts[1] = parts[1].removesuffix(f"\n\n{html.unescape(FOOTER_EN)}")
    assert "\n\n".join(parts) == answer
    first, second = chat.state.sent_to(CHAT)
    for message_id in (first, second):
        updates = chat.state.updates_of(message_id)
        _assert_spaced(updates)
        assert all(telegram_length(c.params["text"]) <= MESSAGE_LIMIT for c in updates)
    # Once the second message exists, the first one is finished and never edited again.
    second_sent = chat.state.updates_of(second)[0].at
    assert all(c.at < second_sent for c in chat.state.updates_of(first))
    assert chat.state.updates_of(first)[-1].params["text"] == texts[0]


async def test_a_failover_before_the_text_is_not_shown(
    chat: Chat, selector: ScriptedSelector
) -> None:
    selector.stream_scripts = [
        [
            Failover("cerebras/zai-glm-4.7", "groq/llama-3.3-70b-versatile"),
            Delta("ok", delay=0.05),
            Finish(scripted_reply("ok", fallback_used=True, attempts=2)),
        ]
    ]
    assert await chat.send("q", language_code="en") == [
        f"ok\n\n{FOOTER_EN}<i> · answered after 2 attempts</i>"
    ]


async def test_a_failure_before_the_text_gets_the_usual_message(
    chat: Chat, selector: ScriptedSelector
) -> None:
    selector.stream_scripts = [
        [
            Failover("cerebras/zai-glm-4.7", "groq/llama-3.3-70b-versatile"),
            Fail(errors.ResourceExhausted("all rate limited", retry_after_seconds=41.2)),
        ]
    ]
    assert await chat.send("q", language_code="en") == [
        "⏳ Every free model has hit its request limit right now. Please try again in 42 seconds."
    ]
    assert not [c for c in chat.state.calls if c.method == "editMessageText"]


@pytest.mark.parametrize(
    ("error", "language", "note"),
    [
        (
            errors.Unavailable(
                "the provider dropped the stream",
                retry_after_seconds=5,
                reason=common_pb2.ERROR_REASON_SERVICE_UNAVAILABLE,
            ),
            "en",
            "⚠️ <b>The answer was cut off</b>: the model stopped answering. Please ask again.",
        ),
        (
            errors.DeadlineExceeded("deadline spent mid-stream"),
            "ru",
            "⚠️ <b>Ответ оборвался</b>: время на ответ истекло. Спросите ещё раз, пожалуйста.",
        ),
    ],
)
async def test_a_failure_after_text_says_the_answer_was_cut_off(
    chat: Chat, selector: ScriptedSelector, error: errors.ServiceError, language: str, note: str
) -> None:
    selector.stream_scripts = [
        [Delta("Partial <answer> &"), Delta(" more", delay=0.1), Fail(error, delay=0.1)]
    ]
    assert await chat.send("q", language_code=language) == [
        f"Partial &lt;answer&gt; &amp; more\n\n{note}"
    ]
    updates = _updates_of_the_one_message(chat)
    _assert_spaced(updates)


async def test_a_stream_that_ends_without_a_result_is_cut_off(
    chat: Chat, selector: ScriptedSelector
) -> None:
    selector.stream_scripts = [[Delta("Half an answer")]]
    assert await chat.send("q", language_code="en") == [
        "Half an answer\n\n"
        "⚠️ <b>The answer was cut off</b>: the model stopped answering. Please ask again."
    ]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (DeadlinePassed("deadline"), EN.cut_reason_deadline),
        (SelectorUnreachable("connection reset"), EN.cut_reason_unreachable),
        (NothingAvailable("dropped", "ERROR_REASON_SERVICE_UNAVAILABLE"), EN.cut_reason_stopped),
        (SelectorFailure("the stream ended without a result"), EN.cut_reason_stopped),
    ],
)
def test_the_cut_off_note_names_the_reason(failure: SelectorFailure, reason: str) -> None:
    assert render.cut_off("text", failure, EN) == [
        f"text\n\n⚠️ <b>The answer was cut off</b>: {reason}. Please ask again."
    ]


async def test_the_final_text_waits_out_telegrams_retry_after(
    chat: Chat, selector: ScriptedSelector
) -> None:
    selector.stream_scripts = [[Delta("Hello"), Finish(scripted_reply("Hello"), delay=0.05)]]
    chat.state.refuse("editMessageText", 429, "Too Many Requests: retry after 1", retry_after=1)
    assert await chat.send("q", language_code="en") == [f"Hello\n\n{FOOTER_EN}"]
    refused, edited = [c for c in chat.state.calls if c.method == "editMessageText"]
    assert refused.error.startswith("Too Many Requests")
    assert edited.at - refused.at >= 1


async def test_an_older_selector_answers_through_process_prompt(
    chat: Chat, selector: ScriptedSelector
) -> None:
    selector.streams = False
    await chat.press("pin:2", message_id=5)
    assert await chat.send("q", language_code="en") == [
        "Answer to: q\n\n<i>🤖 gemini/gemini-2.5-flash · gemini · 1.2 s</i>"
    ]
    stream, whole = selector.prompts()
    assert (stream.method, whole.method) == ("StreamPrompt", "ProcessPrompt")
    assert whole.request == stream.request
    assert whole.request.model_name == "gemini/gemini-2.5-flash"
    assert whole.metadata["x-request-id"] == stream.metadata["x-request-id"]
    assert whole.time_remaining is not None
    assert 70 < whole.time_remaining < 76
    updates = _updates_of_the_one_message(chat)
    assert [c.method for c in updates] == ["sendMessage"]


async def test_an_answer_telegram_refuses_stops_the_stream_at_once(
    chat: Chat, selector: ScriptedSelector
) -> None:
    selector.stream_scripts = [
        [
            Delta("one"),
            Delta(" two", delay=0.3),
            Delta(" three", delay=60),
            Finish(scripted_reply("x")),
        ]
    ]
    chat.state.refuse("sendMessage", 403, "Forbidden: bot was blocked by the user")
    async with asyncio.timeout(10):
        await chat.send("q", language_code="en")
        await selector.stream_cancelled.wait()
    assert [c.method for c in chat.state.calls if c.method != "sendChatAction"] == [
        "sendMessage",
        "sendMessage",
    ]
