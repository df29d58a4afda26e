"""End to end: the real bot long-polls a loopback Bot API server and asks the Selector over gRPC.

`selector_address` (conftest) is the scripted Selector here; the same tests run against the real
Selector + simulator by overriding that fixture.
"""

from __future__ import annotations

import itertools

from aiselector.v1 import selector_pb2
from services.common import errors
from tests.bot.conftest import EDIT_INTERVAL, running_bot
from tests.bot.fake_telegram import callback_update, message_update
from tests.fakes import Delta, Fail, Finish, ScriptedSelector


async def test_a_users_text_gets_the_answer_in_that_chat(
    selector: ScriptedSelector, selector_address: str
) -> None:
    async with running_bot(selector_address) as api:
        await api.push(message_update("Hello there", user_id=31, language_code="en"))
        message_id, text = await api.wait_for_text(31, lambda t: "🤖" in t)
        assert text == (
            "Answer to: Hello there\n\n<i>🤖 groq/llama-3.3-70b-versatile · groq · 1.2 s</i>"
        )
        assert api.state.sent_to(31) == [message_id]
        assert all(c.params["parse_mode"] == "HTML" for c in api.state.updates_of(message_id))
        typing = [c.params for c in api.calls if c.method == "sendChatAction"]
        assert typing[0] == {"chat_id": 31, "action": "typing"}
    [call] = selector.prompts()
    assert call.request.user_id == "31"
    assert call.metadata["x-client-id"] == "telegram-bot"


async def test_a_rate_limited_selector_gives_the_rate_limit_message(
    selector: ScriptedSelector, selector_address: str
) -> None:
    selector.prompt_script = [errors.ResourceExhausted("all rate limited", retry_after_seconds=7)]
    async with running_bot(selector_address) as api:
        await api.push(message_update("Hello", user_id=32, language_code="ru"))
        sent = await api.wait_for("sendMessage", lambda p: p["chat_id"] == 32)
    assert sent.params["text"] == (
        "⏳ Все бесплатные модели сейчас упёрлись в лимиты запросов. "
        "Попробуйте снова через 7 секунд."
    )


async def test_pinning_through_the_keyboard_end_to_end(
    selector: ScriptedSelector, selector_address: str
) -> None:
    async with running_bot(selector_address) as api:
        await api.push(message_update("/models", user_id=33, language_code="en"))
        keyboard = await api.wait_for("sendMessage", lambda p: p["chat_id"] == 33)
        rows = keyboard.params["reply_markup"]["inline_keyboard"]
        gemini = next(r[0] for r in rows if "gemini" in r[0]["text"])
        message_id = keyboard.result["message_id"]
        await api.push(callback_update(gemini["callback_data"], message_id=message_id, user_id=33))
        await api.wait_for("answerCallbackQuery")
        edited = await api.wait_for("editMessageText", lambda p: p["chat_id"] == 33)
        assert edited.params["message_id"] == message_id
        await api.push(message_update("q", user_id=33, language_code="en"))
        await api.wait_for_text(33, lambda t: t.startswith("Answer to: q\n\n"))
    assert selector.prompts()[-1].request.model_name == "gemini/gemini-2.5-flash"


async def test_a_streamed_answer_is_edited_in_place_over_http(
    selector: ScriptedSelector, selector_address: str
) -> None:
    words = [f"w{i} " for i in range(10)]
    answer = "".join(words).strip()
    reply = selector_pb2.ProcessPromptResponse(
        response=answer, selected_model="groq/llama-3.3-70b-versatile", provider="groq"
    )
    selector.stream_scripts = [
        [*(Delta(word, delay=0.05) for word in words), Finish(reply, delay=0.05)]
    ]
    async with running_bot(selector_address) as api:
        await api.push(message_update("q", user_id=34, language_code="en"))
        message_id, text = await api.wait_for_text(34, lambda t: "🤖" in t)
    assert text == f"{answer}\n\n<i>🤖 groq/llama-3.3-70b-versatile · groq · 0.0 s</i>"
    assert api.state.sent_to(34) == [message_id]
    updates = api.state.updates_of(message_id)
    assert len(updates) >= 3
    assert updates[0].params["text"].endswith(" ▌")
    assert all(b.at - a.at >= EDIT_INTERVAL for a, b in itertools.pairwise(updates))


async def test_telegrams_retry_after_on_an_edit_is_waited_out(
    selector: ScriptedSelector, selector_address: str
) -> None:
    words = [f"w{i} " for i in range(8)]
    reply = selector_pb2.ProcessPromptResponse(response="".join(words).strip())
    selector.stream_scripts = [
        [*(Delta(word, delay=0.15) for word in words), Finish(reply, delay=0.05)]
    ]
    async with running_bot(selector_address) as api:
        api.state.refuse("editMessageText", 429, "Too Many Requests: retry after 1", retry_after=1)
        await api.push(message_update("q", user_id=35, language_code="en"))
        message_id, _ = await api.wait_for_text(35, lambda t: "🤖" in t)
    refused = next(c for c in api.calls if c.method == "editMessageText" and c.error)
    later = [c for c in api.calls if c.at > refused.at and c.method != "getUpdates"]
    assert later
    assert all(c.at - refused.at >= 1 for c in later if c.method != "sendChatAction")
    assert api.state.updates_of(message_id)[-1].params["text"].startswith("w0 w1 w2 w3 w4 w5 w6 w7")


async def test_a_cut_stream_says_so_over_http(
    selector: ScriptedSelector, selector_address: str
) -> None:
    selector.stream_scripts = [
        [
            Delta("The first half"),
            Fail(errors.DeadlineExceeded("deadline spent mid-stream"), delay=0.1),
        ]
    ]
    async with running_bot(selector_address) as api:
        await api.push(message_update("q", user_id=36, language_code="en"))
        _, text = await api.wait_for_text(36, lambda t: "⚠️" in t)
    assert text == (
        "The first half\n\n⚠️ <b>The answer was cut off</b>: the time for the answer ran out. "
        "Please ask again."
    )


async def test_an_older_selector_without_stream_prompt_still_answers(
    selector: ScriptedSelector, selector_address: str
) -> None:
    selector.streams = False
    async with running_bot(selector_address) as api:
        await api.push(message_update("Hello", user_id=37, language_code="en"))
        message_id, text = await api.wait_for_text(37, lambda t: "🤖" in t)
    assert text == "Answer to: Hello\n\n<i>🤖 groq/llama-3.3-70b-versatile · groq · 1.2 s</i>"
    assert [c.method for c in api.state.updates_of(message_id)] == ["sendMessage"]
    assert [c.method for c in selector.prompts()] == ["StreamPrompt", "ProcessPrompt"]
