"""An answer streamed into a chat: one message edited as the text grows, the next past the limit."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter

from services.bot.formatting import MESSAGE_LIMIT, escape, settled_pieces, split_text

log = logging.getLogger(__name__)

# Ends the message that is still growing, so that a pause in the stream never looks like the end.
CURSOR = " ▌"
# How often the final pages are tried when Telegram keeps asking to wait (429).
FINAL_ATTEMPTS = 3


def live_pages(text: str) -> list[str]:
    """Messages (HTML) for `text` while it grows: its settled pieces, then the rest and the cursor.

    Every page is escaped whole each time, so no page ever ends inside an entity.
    """
    settled, rest = settled_pieces(text)
    growing = split_text(rest, MESSAGE_LIMIT - len(CURSOR))[:1]
    return [escape(piece) for piece in settled] + [escape(p.rstrip()) + CURSOR for p in growing]


class LiveAnswer:
    """The messages of one answer in one chat, kept showing the text received so far.

    `append` adds text; a task of its own shows it, so the stream is read on while Telegram is slow
    or asks to wait. A call comes at least `edit_interval` after the previous one ended, so no
    message is edited more often; a message is edited only when its text changes (Telegram refuses
    the same text with 400 "message is not modified"); after a 429 nothing is sent for the
    `retry_after` Telegram asked. `finish` replaces everything with the final pages.
    """

    def __init__(self, bot: Bot, chat_id: int, edit_interval: float) -> None:
        self.text = ""
        self._bot = bot
        self._chat_id = chat_id
        self._interval = edit_interval
        # (message id, the HTML it shows), in order.
        self._shown: list[tuple[int, str]] = []
        self._not_before = 0.0
        self._changed = asyncio.Event()
        self._finishing = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveAnswer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stops the showing task if the handler left early (a failure, a shutdown)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def append(self, text: str) -> None:
        """Adds received text; raises whatever stopped the showing task."""
        if self._task is None:
            self._task = asyncio.create_task(self._show_while_growing())
        elif self._task.done():
            self._task.result()
        self.text += text
        self._changed.set()

    async def finish(self, pages: list[str]) -> None:
        """Shows the final `pages`: edits the messages whose text differs, sends the others."""
        self._finishing = True
        self._changed.set()
        if self._task is not None:
            await self._task
        for attempt in range(1, FINAL_ATTEMPTS + 1):
            await self._wait_turn()
            try:
                await self._show(pages)
                return
            except TelegramRetryAfter as error:
                if attempt == FINAL_ATTEMPTS:
                    raise
                self._postpone(error)

    async def _show_while_growing(self) -> None:
        while True:
            await self._changed.wait()
            await self._wait_turn()
            if self._finishing:
                return
            self._changed.clear()
            try:
                await self._show(live_pages(self.text))
            except TelegramRetryAfter as error:
                self._postpone(error)
                self._changed.set()

    async def _wait_turn(self) -> None:
        delay = self._not_before - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _postpone(self, error: TelegramRetryAfter) -> None:
        log.warning("telegram asked to wait", extra={"retry_after": error.retry_after})
        wait_until = asyncio.get_running_loop().time() + error.retry_after
        self._not_before = max(self._not_before, wait_until)

    async def _show(self, pages: list[str]) -> None:
        for index, page in enumerate(pages):
            if index == len(self._shown):
                message = await self._bot.send_message(self._chat_id, page)
                self._shown.append((message.message_id, page))
            elif self._shown[index][1] != page:
                message_id = self._shown[index][0]
                await self._edit(message_id, page)
                self._shown[index] = (message_id, page)
            else:
                continue
            self._not_before = asyncio.get_running_loop().time() + self._interval

    async def _edit(self, message_id: int, page: str) -> None:
        try:
            await self._bot.edit_message_text(page, chat_id=self._chat_id, message_id=message_id)
        except TelegramBadRequest as error:
            # Telegram compares texts after its own clean-up (trimmed whitespace, parsed
            # entities): a page that differs only there already shows what it should.
            if "message is not modified" not in error.message:
                raise
            log.info("telegram found the page unchanged", extra={"message_id": message_id})
