"""Which model each chat has pinned with /models.

Pins are kept in memory, per bot process: they are lost when the bot restarts (the chat is back
to automatic choice) and are not shared between several bot processes. A pin is a preference,
not a promise: the Selector falls back to automatic choice when the model cannot answer and says
why in `pin_note`.
"""

from __future__ import annotations


class ChatPins:
    """Pinned model name per chat id."""

    def __init__(self) -> None:
        self._pins: dict[int, str] = {}

    def get(self, chat_id: int) -> str:
        """The chat's pinned model name, or an empty string for automatic choice."""
        return self._pins.get(chat_id, "")

    def pin(self, chat_id: int, model_name: str) -> None:
        """Pins `model_name` for the chat."""
        self._pins[chat_id] = model_name

    def unpin(self, chat_id: int) -> bool:
        """Back to automatic choice; False when nothing was pinned."""
        return self._pins.pop(chat_id, None) is not None
