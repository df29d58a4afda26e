"""Telegram stand-ins for the bot's tests: a recording Bot session and a loopback Bot API server.

Both answer with the same JSON shapes the real Bot API uses (`{"ok": true, "result": …}`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiohttp import web

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Selector", "username": "selector_bot"}
_INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout"}
_JSON_FIELDS = {"reply_markup", "allowed_updates", "commands", "link_preview_options"}


@dataclass
class ApiCall:
    """One Bot API call the fake server answered."""

    method: str
    params: dict[str, Any]
    result: Any


class TelegramState:
    """Message ids and results shared by both stand-ins."""

    def __init__(self) -> None:
        self._message_ids = itertools.count(1000)

    def result(self, method: str, params: dict[str, Any]) -> Any:
        """The `result` the Bot API returns for `method` called with `params`."""
        if method == "getMe":
            return BOT_USER
        if method in ("sendMessage", "editMessageText"):
            message_id = params.get("message_id") or next(self._message_ids)
            message: dict[str, Any] = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": params["chat_id"], "type": "private"},
                "from": BOT_USER,
                "text": params.get("text", ""),
            }
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            return message
        return True


class RecordingSession(BaseSession):
    """A Bot session that records every method call instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.state = TelegramState()
        # Bot API method names whose next call fails with 400 Bad Request.
        self.fail_once: set[str] = set()

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,
    ) -> TelegramType:
        self.requests.append(method)
        if method.__api_method__ in self.fail_once:
            self.fail_once.discard(method.__api_method__)
            raise TelegramBadRequest(method=method, message="Bad Request: can't parse entities")
        params = method.model_dump(warnings=False)
        result = self.state.result(method.__api_method__, params)
        response = Response[method.__returning__].model_validate(  # type: ignore[name-defined]
            {"ok": True, "result": result}, context={"bot": bot}
        )
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
        self.calls: list[ApiCall] = []
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

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        within: float = 10.0,
    ) -> ApiCall:
        """The first `method` call whose parameters match `predicate`, waiting for it."""

        def found() -> ApiCall | None:
            return next((c for c in self.calls if c.method == method and predicate(c.params)), None)

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        result = found()
        assert result is not None
        return result

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
        result = self.state.result(method, params)
        async with self._changed:
            self.calls.append(ApiCall(method, params, result))
            self._changed.notify_all()
        return web.json_response({"ok": True, "result": result})

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
