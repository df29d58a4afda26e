"""Every handler through Dispatcher.feed_raw_update, against the scripted Selector over gRPC."""

from __future__ import annotations

import html

import grpc
import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendChatAction, SendMessage

from aiselector.v1 import common_pb2, selector_pb2
from services.bot.formatting import telegram_length
from services.bot.selector_client import SelectorClient
from services.common import errors
from tests.bot.conftest import ADMIN_ID, PROMPTS_PER_MINUTE, Chat, FakeClock, make_chat
from tests.fakes import ADMIN_TOKEN, Delta, Finish, ScriptedSelector, scripted_reply

RU_START = (
    "👋 Привет! Я отвечаю на вопросы с помощью лучшей бесплатной языковой модели, "
    "доступной прямо сейчас. Если модель не отвечает, я сам переключаюсь на следующую.\n\n"
    "Просто напишите свой вопрос. Команды — в /help."
)
EN_START = (
    "👋 Hi! I answer your questions with the best free language model available right now. "
    "When a model fails, I switch to the next one by myself.\n\n"
    "Just type your question. Commands are in /help."
)


# /start and /help


async def test_start_lists_ready_models_in_russian_by_default(chat: Chat, selector) -> None:
    assert await chat.send("/start", language_code=None) == [
        RU_START + "\n\n<b>Готовы сейчас:</b>\n"
        "• groq/llama-3.3-70b-versatile (groq)\n"
        "• gemini/gemini-2.5-flash (gemini)"
    ]


async def test_start_in_english(chat: Chat, selector) -> None:
    assert await chat.send("/start", language_code="en-GB") == [
        EN_START + "\n\n<b>Ready now:</b>\n"
        "• groq/llama-3.3-70b-versatile (groq)\n"
        "• gemini/gemini-2.5-flash (gemini)"
    ]


async def test_start_still_greets_when_the_selector_fails(chat: Chat, selector) -> None:
    selector.failures["GetModelStats"] = errors.Unavailable("store down", retry_after_seconds=5)
    assert await chat.send("/start", language_code="en") == [
        EN_START + "\n\nThe model list is not available right now."
    ]


async def test_start_says_when_no_model_is_ready(chat: Chat, selector) -> None:
    selector.models = [m for m in selector.models if m.state != selector_pb2.MODEL_STATE_READY]
    assert await chat.send("/start") == [
        RU_START + "\n\nСейчас ни одна модель не готова отвечать — попробуйте чуть позже."
    ]


@pytest.mark.parametrize(
    ("language", "first_line", "last_line"),
    [
        ("ru", "<b>Как пользоваться</b>", "Не больше 3 вопросов в минуту от одного человека."),
        ("en", "<b>How to use me</b>", "At most 3 questions per minute per person."),
    ],
)
async def test_help(chat: Chat, language: str, first_line: str, last_line: str) -> None:
    [text] = await chat.send("/help", language_code=language)
    lines = text.split("\n")
    assert (lines[0], lines[-1]) == (first_line, last_line)
    for command in ("/start", "/stats", "/models", "/auto", "/test", "/help"):
        assert any(line.startswith(f"{command} — ") for line in lines)


# /stats


async def test_stats_in_english_ranks_with_medals_and_states(chat: Chat, selector) -> None:
    until = selector.cooldown_until.strftime("%H:%M")
    assert await chat.send("/stats", language_code="en") == [
        "<b>Model ranking</b> (last 168 h)\n"
        "🥇 <b>groq/llama-3.3-70b-versatile</b> (groq) — score 0.91\n"
        "    success 98% · 1.2 s · requests: 120 · ✅ ready\n"
        "🥈 <b>gemini/gemini-2.5-flash</b> (gemini) — score 0.80\n"
        "    success 90% · 2.5 s · requests: 40 · ✅ ready\n"
        "▫️ <b>cerebras/zai-glm-4.7</b> (cerebras) — score 0.50\n"
        f"    success 60% · 4.0 s · requests: 10 · ⏳ cooling down until {until} UTC\n"
        "    <i>rate limited by the provider</i>\n"
        "▫️ <b>sambanova/Meta-Llama-3.3-70B-Instruct</b> (sambanova) — score 0.00\n"
        "    no data yet · 🔑 no key"
    ]


async def test_stats_in_russian(chat: Chat, selector) -> None:
    until = selector.cooldown_until.strftime("%H:%M")
    [text] = await chat.send("/stats", language_code="ru")
    assert text.split("\n")[:3] == [
        "<b>Рейтинг моделей</b> (за 168 ч)",
        "🥇 <b>groq/llama-3.3-70b-versatile</b> (groq) — оценка 0,91",
        "    успешно 98% · 1,2 с · запросов: 120 · ✅ готова",
    ]
    assert f"⏳ пауза до {until} UTC" in text
    assert text.endswith("данных пока нет · 🔑 нет ключа")


async def test_stats_says_why_a_model_is_set_aside_escaped_and_cut(chat: Chat, selector) -> None:
    reason = "not listed by groq since 2026-12-01 10:00 UTC — update catalog.yaml <b>"
    selector.models = [
        selector_pb2.ModelStats(
            id=7,
            name="groq/gpt-oss-20b",
            provider="groq",
            is_active=True,
            state=selector_pb2.MODEL_STATE_UNLISTED,
            state_reason=reason,
        ),
        selector_pb2.ModelStats(
            id=8,
            name="groq/gpt-oss-120b",
            provider="groq",
            state=selector_pb2.MODEL_STATE_COOLING_DOWN,
            state_reason="x" * 300,
        ),
    ]

    [english] = await chat.send("/stats", language_code="en")
    [russian] = await chat.send("/stats", language_code="ru")

    assert english.split("\n")[1:4] == [
        "▫️ <b>groq/gpt-oss-20b</b> (groq) — score 0.00",
        "    no data yet · 🗑 no longer offered by the provider",
        "    <i>not listed by groq since 2026-12-01 10:00 UTC — update catalog.yaml &lt;b&gt;</i>",
    ]
    assert "🗑 провайдер её больше не предлагает" in russian
    assert f"    <i>{'x' * 159}…</i>" in english


async def test_stats_escapes_names(chat: Chat, selector) -> None:
    selector.models = [
        selector_pb2.ModelStats(
            id=9,
            name="evil/<b>x</b>&co",
            provider="<i>p</i>",
            rank=1,
            total_requests=1,
            state=selector_pb2.MODEL_STATE_READY,
        )
    ]
    [text] = await chat.send("/stats", language_code="en")
    assert "<b>evil/&lt;b&gt;x&lt;/b&gt;&amp;co</b> (&lt;i&gt;p&lt;/i&gt;)" in text


# /test


async def test_test_refuses_non_admins_politely_in_both_languages(chat: Chat, selector) -> None:
    assert await chat.send("/test", user_id=5, language_code="ru") == [
        "🙏 Простите, проверка провайдеров доступна только администраторам бота."
    ]
    assert await chat.send("/test", user_id=5, language_code="en") == [
        "🙏 Sorry, probing the providers is for the bot's admins only."
    ]
    assert [c.method for c in selector.calls] == []


async def test_test_for_an_admin_probes_with_the_admin_token(chat: Chat, selector) -> None:
    texts = await chat.send("/test", user_id=ADMIN_ID, language_code="en")
    assert texts == [
        "🔎 Probing every provider, this can take up to a minute…",
        "<b>2 of 3 working</b>\n"
        "Fastest: <b>groq/llama-3.3-70b-versatile</b> (0.8 s)\n"
        "\n"
        "✅ groq/llama-3.3-70b-versatile — 0.8 s\n"
        "✅ gemini/gemini-2.5-flash — 1.5 s\n"
        "❌ cerebras/zai-glm-4.7 — HTTP 404: model &lt;zai-glm-4.7&gt; not found",
    ]
    [call] = selector.calls
    assert call.method == "TestProviders"
    assert call.metadata["authorization"] == f"Bearer {ADMIN_TOKEN}"
    assert call.metadata["x-client-id"] == "telegram-bot"


async def test_test_reports_a_refused_admin_token(selector, channel) -> None:
    chat = make_chat(
        SelectorClient(channel, prompt_timeout_seconds=5, admin_token="wrong-token-value")
    )
    texts = await chat.send("/test", user_id=ADMIN_ID, language_code="en")
    assert texts[-1] == (
        "The Selector refused the probe: the bot has no valid ADMIN_API_TOKEN. "
        "Check the configuration."
    )
    assert all("wrong-token-value" not in t for t in texts)


# prompts


async def test_prompt_answer_with_model_provider_and_time(chat: Chat, selector) -> None:
    assert await chat.send("What is 2+2?", language_code="en") == [
        "Answer to: What is 2+2?\n\n<i>🤖 groq/llama-3.3-70b-versatile · groq · 1.2 s</i>"
    ]
    [call] = selector.prompts()
    assert call.request.prompt == "What is 2+2?"
    assert call.request.user_id == "501"
    assert call.request.model_name == ""
    assert call.metadata["x-client-id"] == "telegram-bot"
    assert len(call.metadata["x-request-id"]) == 32


async def test_prompt_passes_a_deadline_longer_than_the_selectors(chat: Chat, selector) -> None:
    await chat.send("hi")
    [call] = selector.prompts()
    assert call.time_remaining is not None
    # The bot's deadline is the Selector's 60 s plus 15 s; the server reads it back with a
    # fraction of a second of clock skew either way.
    assert 70 < call.time_remaining < 76


async def test_fallback_shows_the_number_of_attempts(chat: Chat, selector) -> None:
    selector.prompt_script = [
        scripted_reply("ok", fallback_used=True, attempts=3),
        scripted_reply("ok", fallback_used=True, attempts=3),
    ]
    assert await chat.send("q", language_code="en") == [
        "ok\n\n<i>🤖 groq/llama-3.3-70b-versatile · groq · 2.3 s</i>"
        "<i> · answered after 3 attempts</i>"
    ]
    assert await chat.send("q", language_code="ru") == [
        "ok\n\n<i>🤖 groq/llama-3.3-70b-versatile · groq · 2,3 с</i><i> · ответ после 3 попыток</i>"
    ]


async def test_answers_are_html_escaped(chat: Chat, selector) -> None:
    selector.prompt_script = [scripted_reply('<script>alert("x")</script> & <b>bold</b>')]
    [text] = await chat.send("q", language_code="en")
    assert text.startswith(
        '&lt;script&gt;alert("x")&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;\n\n'
    )


async def test_a_10000_character_answer_is_split_at_paragraphs(chat: Chat, selector) -> None:
    paragraph = ("word <&> " * 40).strip()
    body = "\n\n".join(f"{i:02d} {paragraph}" for i in range(28))
    assert len(body) == pytest.approx(10_000, rel=0.05)
    selector.prompt_script = [scripted_reply(body)]
    texts = await chat.send("long", language_code="en")
    assert len(texts) == 3
    assert all(telegram_length(t) <= 4096 for t in texts)
    assert texts[-1].endswith("<i>🤖 groq/llama-3.3-70b-versatile · groq · 2.3 s</i>")
    parts = [html.unescape(t) for t in texts]
    parts[-1] = parts[-1].rsplit("\n\n", 1)[0]
    assert "\n\n".join(parts) == body
    for part in parts:
        assert part.startswith(tuple(f"{i:02d} " for i in range(28)))
        assert part.endswith(paragraph)


async def test_typing_is_renewed_until_the_first_text_only(chat: Chat, selector) -> None:
    selector.stream_scripts = [
        [Delta("slow", delay=0.5), Delta(" start", delay=0.5), Finish(scripted_reply("slow start"))]
    ]
    await chat.send("slow")
    kinds = [type(r) for r in chat.session.requests]
    typing = [i for i, kind in enumerate(kinds) if kind is SendChatAction]
    first_text = kinds.index(SendMessage)
    assert len(typing) >= 3
    assert max(typing) < first_text
    assert all(r.action == "typing" for r in chat.session.sent(SendChatAction))


async def test_non_text_and_unknown_commands(chat: Chat, selector) -> None:
    assert await chat.send("", language_code="en") == [
        "I only understand text messages — please type your question."
    ]
    assert await chat.send("/nope", language_code="ru") == [
        "Не знаю такой команды. Список команд — в /help."
    ]
    assert selector.calls == []


# failures


@pytest.mark.parametrize(
    ("error", "language", "expected"),
    [
        (
            errors.ResourceExhausted("all rate limited", retry_after_seconds=41.2),
            "ru",
            "⏳ Все бесплатные модели сейчас упёрлись в лимиты запросов. "
            "Попробуйте снова через 42 секунды.",
        ),
        (
            errors.ResourceExhausted("all rate limited", retry_after_seconds=41.2),
            "en",
            "⏳ Every free model has hit its request limit right now. "
            "Please try again in 42 seconds.",
        ),
        (
            errors.ResourceExhausted("all rate limited", retry_after_seconds=1800),
            "ru",
            "⏳ Все бесплатные модели сейчас упёрлись в лимиты запросов. "
            "Попробуйте снова через 30 минут.",
        ),
        (
            errors.Unavailable("no model can answer", retry_after_seconds=61),
            "ru",
            "😔 Сейчас ни одна модель не может ответить. Попробуйте снова через 2 минуты.",
        ),
        (
            errors.Unavailable("no model can answer", retry_after_seconds=1),
            "en",
            "😔 No model can answer right now. Please try again in 1 second.",
        ),
        (
            errors.InvalidArgument([("prompt", "must be at most 10000 characters")]),
            "ru",
            "✂️ Слишком длинный вопрос: 5 символов, а можно не больше 10000. "
            "Сократите его, пожалуйста.",
        ),
        (
            errors.InvalidArgument([("prompt", "must be at most 10000 characters")]),
            "en",
            "✂️ Your question is too long: 5 characters, the limit is 10000. Please shorten it.",
        ),
        (
            errors.DeadlineExceeded("deadline spent after 4 attempts"),
            "en",
            "⌛ No model answered in time. Please try again or ask a simpler question.",
        ),
        (
            errors.DeadlineExceeded("deadline spent after 4 attempts"),
            "ru",
            "⌛ Ни одна модель не успела ответить вовремя. "
            "Попробуйте ещё раз или упростите вопрос.",
        ),
        (
            errors.InvalidArgument(
                [], reason=common_pb2.ERROR_REASON_PROMPT_REJECTED, metadata={"tried": "3"}
            ),
            "en",
            "🚫 The models refused this question (too long for them or blocked by a filter). "
            "Please rephrase it.",
        ),
        (
            errors.Unavailable(
                "model store unreachable",
                retry_after_seconds=5,
                reason=common_pb2.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
            ),
            "en",
            "😔 No model can answer right now. Please try again in 5 seconds.",
        ),
        (
            errors.ServiceError("boom"),
            "en",
            "⚠️ Something went wrong. Please try again a bit later.",
        ),
    ],
)
async def test_each_selector_failure_has_a_friendly_message(
    chat: Chat, selector: ScriptedSelector, error, language: str, expected: str
) -> None:
    selector.prompt_script = [error]
    assert await chat.send("hello", language_code=language) == [expected]


async def test_bots_own_timeout_gives_the_deadline_message(
    selector: ScriptedSelector, channel
) -> None:
    chat = make_chat(SelectorClient(channel, prompt_timeout_seconds=0.2))
    selector.delay_seconds = 1.0
    assert await chat.send("slow", language_code="en") == [
        "⌛ No model answered in time. Please try again or ask a simpler question."
    ]


async def test_unreachable_selector(unused_address: str) -> None:
    async with grpc.aio.insecure_channel(unused_address) as dead:
        chat = make_chat(SelectorClient(dead, prompt_timeout_seconds=5))
        assert await chat.send("hello", language_code="en") == [
            "🔌 The model selection service is unreachable. Please try again in a minute."
        ]
        assert await chat.send("hello", language_code="ru") == [
            "🔌 Сервис выбора моделей сейчас недоступен. Попробуйте через минуту."
        ]


async def test_an_unexpected_error_is_logged_and_the_user_told(
    chat: Chat, selector, caplog: pytest.LogCaptureFixture
) -> None:
    chat.state.refuse("sendMessage", 400, "Bad Request: can't parse entities")
    texts = await chat.send("q", language_code="en")
    assert texts == ["⚠️ Something went wrong. Please try again a bit later."]
    [record] = [r for r in caplog.records if r.name == "services.bot.handlers.errors"]
    assert record.getMessage() == "unexpected error while handling an update"
    assert "can't parse entities" in caplog.text


# per-user limit


async def test_per_user_limit(chat: Chat, selector, clock: FakeClock) -> None:
    for _ in range(PROMPTS_PER_MINUTE):
        assert (await chat.send("q", user_id=10))[0].startswith("Answer to: q")
    clock.now += 15
    assert await chat.send("q", user_id=10, language_code="ru") == [
        "✋ Не больше 3 вопросов в минуту. Следующий можно задать через 45 секунд."
    ]
    assert await chat.send("q", user_id=10, language_code="en") == [
        "✋ At most 3 questions per minute. You can ask again in 45 seconds."
    ]
    assert (await chat.send("q", user_id=11))[0].startswith("Answer to: q")
    assert len(selector.prompts()) == PROMPTS_PER_MINUTE + 1
    clock.now += 45
    assert (await chat.send("q", user_id=10))[0].startswith("Answer to: q")


# pinning


async def test_models_keyboard_pin_by_callback_and_auto(chat: Chat, selector) -> None:
    await chat.send("/models", language_code="en")
    [keyboard_message] = chat.session.sent(SendMessage)
    assert keyboard_message.text == "Choose the model for this chat:"
    buttons = [row[0] for row in keyboard_message.reply_markup.inline_keyboard]
    assert [(b.text, b.callback_data) for b in buttons] == [
        ("✅ groq/llama-3.3-70b-versatile", "pin:1"),
        ("✅ gemini/gemini-2.5-flash", "pin:2"),
        ("⏳ cerebras/zai-glm-4.7", "pin:3"),
        ("⏳ sambanova/Meta-Llama-3.3-70B-Instruct", "pin:4"),
        ("🤖 Automatic", "pin:0"),
    ]

    calls = await chat.press("pin:2", message_id=77, language_code="en")
    [toast] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert toast.text == "Pinned gemini/gemini-2.5-flash"
    [edit] = [c for c in calls if isinstance(c, EditMessageText)]
    assert (edit.chat_id, edit.message_id) == (501, 77)
    assert edit.text == (
        "📌 <b>gemini/gemini-2.5-flash</b> answers in this chat. When it is unavailable, "
        "another model answers and I tell you why. /auto goes back to automatic choice."
    )

    assert await chat.send("q", language_code="en") == [
        "Answer to: q\n\n<i>🤖 gemini/gemini-2.5-flash · gemini · 1.2 s</i>"
    ]
    assert selector.prompts()[-1].request.model_name == "gemini/gemini-2.5-flash"
    assert await chat.send("q", user_id=502) != []
    assert selector.prompts()[-1].request.model_name == ""

    [again] = await chat.send("/models", language_code="en")
    assert again == "Pinned now: <b>gemini/gemini-2.5-flash</b>\nChoose the model for this chat:"
    assert chat.session.sent(SendMessage)[-1].reply_markup.inline_keyboard[1][0].text == (
        "📌 gemini/gemini-2.5-flash"
    )

    assert await chat.send("/auto", language_code="ru") == [
        "🤖 Готово: модель снова выбирается автоматически."
    ]
    await chat.send("q")
    assert selector.prompts()[-1].request.model_name == ""
    assert await chat.send("/auto", language_code="ru") == [
        "Модель и так выбирается автоматически."
    ]


async def test_automatic_button_unpins(chat: Chat, selector) -> None:
    await chat.press("pin:1", message_id=5)
    calls = await chat.press("pin:0", message_id=5, language_code="ru")
    [edit] = [c for c in calls if isinstance(c, EditMessageText)]
    assert edit.text == "🤖 Готово: модель снова выбирается автоматически."
    await chat.send("q")
    assert selector.prompts()[-1].request.model_name == ""


async def test_pressing_a_model_that_left_the_catalog(chat: Chat, selector) -> None:
    calls = await chat.press("pin:99", message_id=5, language_code="en")
    [toast] = [c for c in calls if isinstance(c, AnswerCallbackQuery)]
    assert toast.text == "This model is no longer in the catalog. Open /models again."
    assert toast.show_alert is True
    assert not [c for c in calls if isinstance(c, EditMessageText)]


async def test_pin_note_is_shown(chat: Chat, selector) -> None:
    await chat.press("pin:3", message_id=5)
    selector.prompt_script = [
        scripted_reply("ok", pin_note="cerebras/zai-glm-4.7 is cooling down <rate limited>")
    ]
    assert await chat.send("q", language_code="en") == [
        "ok\n\n<i>🤖 groq/llama-3.3-70b-versatile · groq · 2.3 s</i>\n"
        "<i>📌 cerebras/zai-glm-4.7 is cooling down &lt;rate limited&gt;</i>"
    ]
    assert selector.prompts()[-1].request.model_name == "cerebras/zai-glm-4.7"


async def test_a_pinned_model_removed_from_the_catalog_is_unpinned(chat: Chat, selector) -> None:
    await chat.press("pin:4", message_id=5)
    selector.models = selector.models[:2]
    assert await chat.send("q", language_code="en") == [
        "The pinned model sambanova/Meta-Llama-3.3-70B-Instruct is no longer in the catalog, "
        "so I switched back to automatic choice. Please send your question again."
    ]
    await chat.send("q")
    assert selector.prompts()[-1].request.model_name == ""


async def test_stats_shows_admins_todays_usage_per_client_key(chat: Chat, selector) -> None:
    [_, usage] = await chat.send("/stats", user_id=ADMIN_ID, language_code="en")
    assert usage == (
        "<b>Client keys today</b> (UTC)\n"
        "🔑 <b>my-app</b> (#1): requests 12 · tokens 3400 · failed 0\n"
        "🔑 <b>&lt;ci&gt;</b> (#2): requests 3 · tokens 0 · failed 1"
    )
    [call] = [c for c in selector.calls if c.method == "GetClientKeyUsage"]
    assert call.request.days == 1
    # Others see the ranking only, and nobody asks for the usage on their behalf.
    assert len(await chat.send("/stats", language_code="en")) == 1
    assert len([c for c in selector.calls if c.method == "GetClientKeyUsage"]) == 1


async def test_stats_for_admins_says_when_no_key_was_used(chat: Chat, selector) -> None:
    selector.key_usages = []
    [_, empty] = await chat.send("/stats", user_id=ADMIN_ID, language_code="ru")
    assert empty == "Сегодня клиентскими ключами не пользовались."
