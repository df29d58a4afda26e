"""End to end: the real bot long-polls a loopback Bot API server and asks the Selector over gRPC.

`selector_address` (conftest) is the scripted Selector here; the same tests run against the real
Selector + simulator by overriding that fixture.
"""

from __future__ import annotations

from services.common import errors
from tests.bot.conftest import running_bot
from tests.bot.fake_selector import ScriptedSelector
from tests.bot.fake_telegram import callback_update, message_update


async def test_a_users_text_gets_the_answer_in_that_chat(
    selector: ScriptedSelector, selector_address: str
) -> None:
    async with running_bot(selector_address) as api:
        await api.push(message_update("Hello there", user_id=31, language_code="en"))
        sent = await api.wait_for("sendMessage", lambda p: p["chat_id"] == 31)
        assert sent.params["text"] == (
            "Answer to: Hello there\n\n<i>🤖 groq/llama-3.3-70b-versatile · groq · 1.2 s</i>"
        )
        assert sent.params["parse_mode"] == "HTML"
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
        await api.wait_for("sendMessage", lambda p: p["text"].startswith("Answer to: q"))
    assert selector.prompts()[-1].request.model_name == "gemini/gemini-2.5-flash"
