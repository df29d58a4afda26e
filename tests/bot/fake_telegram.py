"""Telegram stand-ins for the bot's tests: a recording Bot session and a loopback Bot API server.

Both answer with the same JSON shapes the real Bot API uses (`{"ok": true, "result": …}`) and
refuse what Telegram refuses, in its words: HTML it cannot parse, a text over 4096 characters
(UTF-16 units, after entity parsing), an empty text, and an edit to the text a message already
shows ("message is not modified", compared after trimming whitespace as Telegram does). Tests
can script one-off refusals (`refuse`), such as a 429 with `retry_after`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import web

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Selector", "username": "selector_bot"}
MESSAGE_LIMIT = 4096
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout"}
_JSON_FIELDS = {"reply_markup", "allowed_updates", "commands", "link_preview_options"}
# Telegram's HTML: these tags, and only these entities.
_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a"}
_TAGS |= {"tg-emoji", "code", "pre", "blockquote"}
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
T = TypeVar("T")


@dataclass
class ApiCall:
    """One Bot API call a stand-in answered; `error` is the description when it was refused."""

    method: str
    params: dict[str, Any]
    result: Any
    at: float
    error: str = ""


@dataclass
class Refusal:
    """A scripted error answer."""

    code: int
    description: str
    retry_after: int | None = None


class TelegramHtml(HTMLParser):
    """Telegram's reading of a `parse_mode=HTML` text: the plain text, or ValueError."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.text = ""
        self._open: list[str] = []

    @classmethod
    def plain(cls, html_text: str) -> str:
        parser = cls()
        parser.feed(html_text)
        parser.close()
        if parser._open:
            raise ValueError(f"can't find end tag corresponding to start tag {parser._open[-1]}")
        return parser.text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS:
            raise ValueError(f"unsupported start tag {tag!r}")
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open.pop() != tag:
            raise ValueError(f"unmatched end tag {tag!r}")

    def handle_data(self, data: str) -> None:
        if any(char in data for char in "<>&"):
            raise ValueError(f"unescaped character in {data!r}")
        self.text += data

    def handle_entityref(self, name: str) -> None:
        if name not in _ENTITIES:
            raise ValueError(f"unsupported entity &{name};")
        self.text += _ENTITIES[name]

    def handle_charref(self, name: str) -> None:
        self.text += chr(int(name[1:], 16) if name.lower().startswith("x") else int(name))


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class TelegramState:
    """Messages, calls and scripted refusals shared by both stand-ins."""

    def __init__(self) -> None:
        self._message_ids = itertools.count(1000)
        self.calls: list[ApiCall] = []
        # Message id → (chat id, the HTML it shows), for messages sent or edited here.
        self.messages: dict[int, tuple[int, str]] = {}
        # Refusals the bot caused (not scripted ones): Telegram would have refused these calls.
        self.provoked: list[str] = []
        self._refusals: dict[str, list[Refusal]] = {}

    def refuse(
        self, method: str, code: int, description: str, retry_after: int | None = None
    ) -> None:
        """The next call of `method` is refused with this error (refusals queue up)."""
        self._refusals.setdefault(method, []).append(Refusal(code, description, retry_after))

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body the Bot API answers `method` called with `params`."""
        at = time.monotonic()
        refusal = self._refusal(method, params)
        if refusal is not None:
            self.calls.append(ApiCall(method, params, None, at, refusal.description))
            body: dict[str, Any] = {
                "ok": False,
                "error_code": refusal.code,
                "description": refusal.description,
            }
            if refusal.retry_after is not None:
                body["parameters"] = {"retry_after": refusal.retry_after}
            return refusal.code, body
        result = self._result(method, params)
        self.calls.append(ApiCall(method, params, result, at))
        return 200, {"ok": True, "result": result}

    def _refusal(self, method: str, params: dict[str, Any]) -> Refusal | None:
        if self._refusals.get(method):
            return self._refusals[method].pop(0)
        if method not in ("sendMessage", "editMessageText"):
            return None
        problem = self._problem(method, params)
        if problem:
            self.provoked.append(problem)
            return Refusal(400, f"Bad Request: {problem}")
        return None

    def _problem(self, method: str, params: dict[str, Any]) -> str:
        """What Telegram would refuse in this text, or an empty string."""
        text = params.get("text", "")
        try:
            plain = TelegramHtml.plain(text).strip()
        except ValueError as error:
            return f"can't parse entities: {error}"
        if not plain:
            return "message text is empty"
        if _utf16_length(plain) > MESSAGE_LIMIT:
            return "message is too long"
        shown = self.messages.get(params.get("message_id", 0))
        if method == "editMessageText" and shown and shown[1].strip() == text.strip():
            return NOT_MODIFIED.removeprefix("Bad Request: ")
        return ""

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method in ("sendMessage", "editMessageText"):
            message_id = params.get("message_id") or next(self._message_ids)
            self.messages[message_id] = (params["chat_id"], params["text"])
            message: dict[str, Any] = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": params["chat_id"], "type": "private"},
                "from": BOT_USER,
                "text": params["text"],
            }
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            return message
        return True

    def updates_of(self, message_id: int) -> list[ApiCall]:
        """The calls that created or changed the message, in order."""
        return [
            c
            for c in self.calls
            if not c.error
            and c.method in ("sendMessage", "editMessageText")
            and c.result["message_id"] == message_id
        ]

    def sent_to(self, chat_id: int) -> list[int]:
        """Ids of the messages sent to the chat, in order."""
        return [
            c.result["message_id"]
            for c in self.calls
            if c.method == "sendMessage" and not c.error and c.params["chat_id"] == chat_id
        ]


class RecordingSession(BaseSession):
    """A Bot session that answers every method call from `TelegramState` instead of sending it.

    Answers go through aiogram's own `check_response`, so a refusal raises the exception aiogram
    raises for it (TelegramBadRequest, TelegramRetryAfter, …).
    """

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.state = TelegramState()

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,
    ) -> TelegramType:
        self.requests.append(method)
        params = method.model_dump(warnings=False)
        status, body = self.state.answer(method.__api_method__, params)
        response = self.check_response(bot, method, status, json.dumps(body))
        return response.result  # type: ignore[return-value]

    async def close(self) -> None:
        return None

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    def sent(self, method_type: type[TelegramMethod[Any]]) -> list[Any]:
        """The recorded calls of one method type, in order."""
        return [r for r in self.requests if isinstance(r, method_type)]


class FakeBotApi:
    """A loopback Bot API server: queue updates with `push`, read what the bot called in `calls`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.state = TelegramState()
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> str:
        """Starts on 127.0.0.1 at a free port; returns the base URL for `TELEGRAM_API_BASE_URL`."""
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        """Stops the server."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def push(self, update: dict[str, Any]) -> int:
        """Queues an update (its `update_id` is assigned here) for the next getUpdates."""
        update_id = next(self._update_ids)
        async with self._changed:
            self._updates.append({**update, "update_id": update_id})
            self._changed.notify_all()
        return update_id

    @property
    def calls(self) -> list[ApiCall]:
        """Every call answered (or refused), in order."""
        return self.state.calls

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        within: float = 10.0,
    ) -> ApiCall:
        """The first `method` call whose parameters match `predicate`, waiting for it."""
        return await self._wait(
            lambda: next(
                (c for c in self.calls if c.method == method and predicate(c.params)), None
            ),
            within,
        )

    async def wait_for_text(
        self, chat_id: int, predicate: Callable[[str], bool], within: float = 10.0
    ) -> tuple[int, str]:
        """A message of the chat (id, HTML) whose text matches `predicate`, waiting for it."""
        return await self._wait(
            lambda: next(
                (
                    (message_id, text)
                    for message_id, (chat, text) in self.state.messages.items()
                    if chat == chat_id and predicate(text)
                ),
                None,
            ),
            within,
        )

    async def _wait(self, find: Callable[[], T | None], within: float) -> T:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: find() is not None)
        found = find()
        assert found is not None
        return found

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = _decode(await request.post())
        if method == "getUpdates":
            return web.json_response({"ok": True, "result": await self._get_updates(params)})
        if method not in _ANSWERED:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        async with self._changed:
            status, body = self.state.answer(method, params)
            self._changed.notify_all()
        return web.json_response(body, status=status)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = params.get("offset", 0)

        def pending() -> list[dict[str, Any]]:
            return [u for u in self._updates if u["update_id"] >= offset]

        async with self._changed:
            self._updates = pending()
            if not self._updates:
                try:
                    async with asyncio.timeout(params.get("timeout", 0)):
                        await self._changed.wait_for(lambda: bool(pending()))
                except TimeoutError:
                    return []
            return pending()


_ANSWERED = {
    "getMe",
    "sendMessage",
    "sendChatAction",
    "answerCallbackQuery",
    "editMessageText",
    "deleteWebhook",
    "setMyCommands",
}


def _decode(form: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in form.items():
        if key in _INT_FIELDS:
            params[key] = int(value)
        elif key in _JSON_FIELDS:
            params[key] = json.loads(value)
        else:
            params[key] = value
    return params


def user(user_id: int = 501, language_code: str | None = "ru") -> dict[str, Any]:
    """A Telegram user."""
    return {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": language_code}


def message_update(
    text: str, *, user_id: int = 501, chat_id: int | None = None, language_code: str | None = "ru"
) -> dict[str, Any]:
    """An update carrying a text message in a private chat (a sticker when `text` is empty)."""
    message: dict[str, Any] = {
        "message_id": 1,
        "date": int(time.time()),
        "chat": {"id": chat_id or user_id, "type": "private"},
        "from": user(user_id, language_code),
    }
    if text:
        message["text"] = text
    else:
        message["sticker"] = {
            "file_id": "s",
            "file_unique_id": "s",
            "type": "regular",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
        }
    return {"message": message}


def callback_update(
    data: str,
    *,
    message_id: int,
    user_id: int = 501,
    chat_id: int | None = None,
    language_code: str | None = "ru",
) -> dict[str, Any]:
    """An update for a pressed inline button on the bot's message `message_id`."""
    return {
        "callback_query": {
            "id": f"cb-{message_id}-{data}",
            "from": user(user_id, language_code),
            "chat_instance": "instance",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id or user_id, "type": "private"},
                "from": BOT_USER,
                "text": "keyboard",
            },
        }
    }
