"""Every text the bot sends, in Russian and English; templates are Telegram HTML."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Language = Literal["ru", "en"]


def language_of(language_code: str | None) -> Language:
    """English for an `en…` Telegram language code, Russian for everything else (the default)."""
    return "en" if (language_code or "").lower().startswith("en") else "ru"


def _ru_plural(n: int, one: str, few: str, many: str) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


@dataclass(frozen=True)
class Texts:
    """The bot's texts in one language. `{…}` fields are filled with already escaped values."""

    language: Language
    start: str
    start_models: str
    start_no_models: str
    start_models_unavailable: str
    help: str
    stats_header: str
    stats_line: str
    stats_details: str
    stats_reason: str
    stats_no_data: str
    stats_empty: str
    keys_usage_header: str
    keys_usage_line: str
    keys_usage_empty: str
    keys_usage_unavailable: str
    state_ready: str
    state_cooling_down: str
    state_circuit_open: str
    state_half_open: str
    state_no_credentials: str
    state_out_of_budget: str
    state_inactive: str
    state_unlisted: str
    state_unknown: str
    until: str
    test_not_admin: str
    test_started: str
    test_summary: str
    test_fastest: str
    test_none_working: str
    test_line_success: str
    test_line_error: str
    test_line_skipped: str
    test_admin_api_refused: str
    models_choose: str
    models_current: str
    models_none: str
    models_auto_button: str
    models_pinned: str
    models_pinned_toast: str
    models_gone: str
    auto_done: str
    auto_already: str
    answer_footer: str
    answer_attempts: str
    answer_pin_note: str
    answer_cut: str
    cut_reason_deadline: str
    cut_reason_unreachable: str
    cut_reason_stopped: str
    pinned_model_removed: str
    failure_rate_limited: str
    failure_user_limited: str
    failure_unavailable: str
    failure_too_long: str
    failure_rejected: str
    failure_invalid: str
    failure_deadline: str
    failure_unreachable: str
    failure_internal: str
    non_text: str
    unknown_command: str
    commands: tuple[tuple[str, str], ...]
    seconds_units: tuple[str, str, str]
    minutes_units: tuple[str, str, str]
    hours_units: tuple[str, str, str]
    attempts_units: tuple[str, str, str]

    def _plural(self, n: int, units: tuple[str, str, str]) -> str:
        if self.language == "ru":
            return f"{n} {_ru_plural(n, *units)}"
        return f"{n} {units[0] if n == 1 else units[1]}"

    def duration(self, seconds: float) -> str:
        """A wait as people say it: `45 seconds`, `3 minutes`, `2 hours` (always rounded up)."""
        whole = max(1, math.ceil(seconds))
        if whole < 60:
            return self._plural(whole, self.seconds_units)
        if whole < 3600:
            return self._plural(math.ceil(whole / 60), self.minutes_units)
        return self._plural(math.ceil(whole / 3600), self.hours_units)

    def attempts(self, n: int) -> str:
        """`3 attempts` / `3 попыток` (the form that follows "after")."""
        return self._plural(n, self.attempts_units)

    def decimal(self, value: float, places: int) -> str:
        """A number with `places` decimals and the language's decimal separator."""
        text = f"{value:.{places}f}"
        return text.replace(".", ",") if self.language == "ru" else text

    def seconds(self, value: float) -> str:
        """A time in seconds with one decimal."""
        return self.decimal(value, 1)

    def percent(self, ratio: float) -> str:
        """A ratio in [0, 1] as a whole percentage."""
        return f"{round(ratio * 100)}%"


RU = Texts(
    language="ru",
    start=(
        "👋 Привет! Я отвечаю на вопросы с помощью лучшей бесплатной языковой модели, "
        "доступной прямо сейчас. Если модель не отвечает, я сам переключаюсь на следующую.\n\n"
        "Просто напишите свой вопрос. Команды — в /help."
    ),
    start_models="<b>Готовы сейчас:</b>\n{models}",
    start_no_models="Сейчас ни одна модель не готова отвечать — попробуйте чуть позже.",
    start_models_unavailable="Список моделей сейчас недоступен.",
    help=(
        "<b>Как пользоваться</b>\n"
        "Напишите вопрос обычным сообщением — я выберу модель и отвечу.\n\n"
        "/start — что я умею и какие модели готовы\n"
        "/stats — рейтинг моделей и их состояние\n"
        "/models — закрепить модель для этого чата\n"
        "/auto — снова выбирать модель автоматически\n"
        "/test — проверить всех провайдеров (только для администраторов)\n"
        "/help — эта справка\n\n"
        "Не больше {limit} вопросов в минуту от одного человека."
    ),
    stats_header="<b>Рейтинг моделей</b> (за {hours} ч)",
    stats_line="{marker} <b>{name}</b> ({provider}) — оценка {score}\n    {details} · {state}",
    stats_details="успешно {success_rate} · {latency} с · запросов: {requests}",
    stats_reason="    <i>{reason}</i>",
    stats_no_data="данных пока нет",
    stats_empty="В каталоге пока нет моделей.",
    keys_usage_header="<b>Клиентские ключи сегодня</b> (UTC)",
    keys_usage_line="🔑 <b>{name}</b> (#{key_id}): запросов {requests} · токенов {tokens} · "
    "ошибок {failures}",
    keys_usage_empty="Сегодня клиентскими ключами не пользовались.",
    keys_usage_unavailable="Расход по клиентским ключам сейчас недоступен.",
    state_ready="✅ готова",
    state_cooling_down="⏳ пауза{until}",
    state_circuit_open="🔌 сбоит, пауза{until}",
    state_half_open="🔄 проверяется",
    state_no_credentials="🔑 нет ключа",
    state_out_of_budget="📉 бесплатный лимит исчерпан{until}",
    state_inactive="⛔ выключена",
    state_unlisted="🗑 провайдер её больше не предлагает",
    state_unknown="❔ неизвестно",
    until=" до {time} UTC",
    test_not_admin="🙏 Простите, проверка провайдеров доступна только администраторам бота.",
    test_started="🔎 Проверяю всех провайдеров, это может занять до минуты…",
    test_summary="<b>Работают {successful} из {total}</b>",
    test_fastest="Быстрее всех: <b>{model}</b> ({seconds} с)",
    test_none_working="Ни один провайдер сейчас не ответил.",
    test_line_success="✅ {model} — {seconds} с",
    test_line_error="❌ {model} — {error}",
    test_line_skipped="⏭ {model} — пропущена: {error}",
    test_admin_api_refused=(
        "Селектор отказал в проверке: у бота нет верного ADMIN_API_TOKEN. Проверьте настройки."
    ),
    models_choose="Выберите модель для этого чата:",
    models_current="Сейчас закреплена: <b>{model}</b>",
    models_none="Сейчас нет моделей, которые можно закрепить.",
    models_auto_button="🤖 Автовыбор",
    models_pinned=(
        "📌 В этом чате отвечает <b>{model}</b>. Если она недоступна, отвечу другой моделью "
        "и скажу почему. /auto — вернуть автовыбор."
    ),
    models_pinned_toast="Закреплена {model}",
    models_gone="Этой модели больше нет в каталоге. Откройте /models заново.",
    auto_done="🤖 Готово: модель снова выбирается автоматически.",
    auto_already="Модель и так выбирается автоматически.",
    answer_footer="<i>🤖 {model} · {provider} · {seconds} с</i>",
    answer_attempts="<i> · ответ после {attempts}</i>",
    answer_pin_note="<i>📌 {note}</i>",
    answer_cut="⚠️ <b>Ответ оборвался</b>: {reason}. Спросите ещё раз, пожалуйста.",
    cut_reason_deadline="время на ответ истекло",
    cut_reason_unreachable="пропала связь с сервисом выбора моделей",
    cut_reason_stopped="модель перестала отвечать",
    pinned_model_removed=(
        "Закреплённой модели {model} больше нет в каталоге, я вернул автовыбор. "
        "Отправьте вопрос ещё раз."
    ),
    failure_rate_limited=(
        "⏳ Все бесплатные модели сейчас упёрлись в лимиты запросов. Попробуйте снова через {wait}."
    ),
    failure_user_limited=(
        "✋ Не больше {limit} вопросов в минуту. Следующий можно задать через {wait}."
    ),
    failure_unavailable=(
        "😔 Сейчас ни одна модель не может ответить. Попробуйте снова через {wait}."
    ),
    failure_too_long=(
        "✂️ Слишком длинный вопрос: {length} символов, а можно не больше {limit}. "
        "Сократите его, пожалуйста."
    ),
    failure_rejected=(
        "🚫 Модели отказались отвечать на этот вопрос (слишком длинный для них или "
        "не прошёл фильтр). Попробуйте переформулировать."
    ),
    failure_invalid="🚫 Селектор не принял запрос: {details}",
    failure_deadline=(
        "⌛ Ни одна модель не успела ответить вовремя. Попробуйте ещё раз или упростите вопрос."
    ),
    failure_unreachable="🔌 Сервис выбора моделей сейчас недоступен. Попробуйте через минуту.",
    failure_internal="⚠️ Что-то пошло не так. Попробуйте ещё раз чуть позже.",
    non_text="Я понимаю только текстовые сообщения — напишите вопрос словами.",
    unknown_command="Не знаю такой команды. Список команд — в /help.",
    commands=(
        ("start", "Что умеет бот"),
        ("help", "Справка"),
        ("stats", "Рейтинг моделей"),
        ("models", "Закрепить модель"),
        ("auto", "Автовыбор модели"),
        ("test", "Проверить провайдеров (админы)"),
    ),
    seconds_units=("секунду", "секунды", "секунд"),
    minutes_units=("минуту", "минуты", "минут"),
    hours_units=("час", "часа", "часов"),
    attempts_units=("попытки", "попыток", "попыток"),
)

EN = Texts(
    language="en",
    start=(
        "👋 Hi! I answer your questions with the best free language model available right now. "
        "When a model fails, I switch to the next one by myself.\n\n"
        "Just type your question. Commands are in /help."
    ),
    start_models="<b>Ready now:</b>\n{models}",
    start_no_models="No model is ready to answer right now — please try again a bit later.",
    start_models_unavailable="The model list is not available right now.",
    help=(
        "<b>How to use me</b>\n"
        "Send a question as a normal message — I pick a model and answer.\n\n"
        "/start — what I do and which models are ready\n"
        "/stats — model ranking and state\n"
        "/models — pin a model for this chat\n"
        "/auto — go back to automatic choice\n"
        "/test — probe every provider (admins only)\n"
        "/help — this help\n\n"
        "At most {limit} questions per minute per person."
    ),
    stats_header="<b>Model ranking</b> (last {hours} h)",
    stats_line="{marker} <b>{name}</b> ({provider}) — score {score}\n    {details} · {state}",
    stats_details="success {success_rate} · {latency} s · requests: {requests}",
    stats_reason="    <i>{reason}</i>",
    stats_no_data="no data yet",
    stats_empty="The catalog has no models yet.",
    keys_usage_header="<b>Client keys today</b> (UTC)",
    keys_usage_line="🔑 <b>{name}</b> (#{key_id}): requests {requests} · tokens {tokens} · "
    "failed {failures}",
    keys_usage_empty="No client key was used today.",
    keys_usage_unavailable="Client key usage cannot be read now.",
    state_ready="✅ ready",
    state_cooling_down="⏳ cooling down{until}",
    state_circuit_open="🔌 failing, paused{until}",
    state_half_open="🔄 being re-checked",
    state_no_credentials="🔑 no key",
    state_out_of_budget="📉 free quota spent{until}",
    state_inactive="⛔ switched off",
    state_unlisted="🗑 no longer offered by the provider",
    state_unknown="❔ unknown",
    until=" until {time} UTC",
    test_not_admin="🙏 Sorry, probing the providers is for the bot's admins only.",
    test_started="🔎 Probing every provider, this can take up to a minute…",
    test_summary="<b>{successful} of {total} working</b>",
    test_fastest="Fastest: <b>{model}</b> ({seconds} s)",
    test_none_working="No provider answered right now.",
    test_line_success="✅ {model} — {seconds} s",
    test_line_error="❌ {model} — {error}",
    test_line_skipped="⏭ {model} — skipped: {error}",
    test_admin_api_refused=(
        "The Selector refused the probe: the bot has no valid ADMIN_API_TOKEN. "
        "Check the configuration."
    ),
    models_choose="Choose the model for this chat:",
    models_current="Pinned now: <b>{model}</b>",
    models_none="There are no models to pin right now.",
    models_auto_button="🤖 Automatic",
    models_pinned=(
        "📌 <b>{model}</b> answers in this chat. When it is unavailable, another model answers "
        "and I tell you why. /auto goes back to automatic choice."
    ),
    models_pinned_toast="Pinned {model}",
    models_gone="This model is no longer in the catalog. Open /models again.",
    auto_done="🤖 Done: the model is chosen automatically again.",
    auto_already="The model is already chosen automatically.",
    answer_footer="<i>🤖 {model} · {provider} · {seconds} s</i>",
    answer_attempts="<i> · answered after {attempts}</i>",
    answer_pin_note="<i>📌 {note}</i>",
    answer_cut="⚠️ <b>The answer was cut off</b>: {reason}. Please ask again.",
    cut_reason_deadline="the time for the answer ran out",
    cut_reason_unreachable="the connection to the model selection service was lost",
    cut_reason_stopped="the model stopped answering",
    pinned_model_removed=(
        "The pinned model {model} is no longer in the catalog, so I switched back to automatic "
        "choice. Please send your question again."
    ),
    failure_rate_limited=(
        "⏳ Every free model has hit its request limit right now. Please try again in {wait}."
    ),
    failure_user_limited="✋ At most {limit} questions per minute. You can ask again in {wait}.",
    failure_unavailable="😔 No model can answer right now. Please try again in {wait}.",
    failure_too_long=(
        "✂️ Your question is too long: {length} characters, the limit is {limit}. Please shorten it."
    ),
    failure_rejected=(
        "🚫 The models refused this question (too long for them or blocked by a filter). "
        "Please rephrase it."
    ),
    failure_invalid="🚫 The Selector did not accept the request: {details}",
    failure_deadline=("⌛ No model answered in time. Please try again or ask a simpler question."),
    failure_unreachable=(
        "🔌 The model selection service is unreachable. Please try again in a minute."
    ),
    failure_internal="⚠️ Something went wrong. Please try again a bit later.",
    non_text="I only understand text messages — please type your question.",
    unknown_command="I don't know that command. See /help for the list.",
    commands=(
        ("start", "What the bot does"),
        ("help", "Help"),
        ("stats", "Model ranking"),
        ("models", "Pin a model"),
        ("auto", "Automatic model choice"),
        ("test", "Probe providers (admins)"),
    ),
    seconds_units=("second", "seconds", "seconds"),
    minutes_units=("minute", "minutes", "minutes"),
    hours_units=("hour", "hours", "hours"),
    attempts_units=("attempt", "attempts", "attempts"),
)

_BY_LANGUAGE: dict[Language, Texts] = {"ru": RU, "en": EN}


def texts_for(language_code: str | None) -> Texts:
    """The texts for a Telegram user's `language_code`."""
    return _BY_LANGUAGE[language_of(language_code)]
