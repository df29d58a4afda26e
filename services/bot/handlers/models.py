"""/models pins a model for the chat with an inline keyboard; /auto goes back to automatic choice.

Pins live in `ChatPins` (in memory, per process; see services/bot/pins.py).
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from aiselector.v1 import selector_pb2
from services.bot.formatting import escape
from services.bot.pins import ChatPins
from services.bot.selector_client import SelectorClient
from services.bot.texts import Texts

# Telegram allows 100 buttons; one is "automatic".
_MAX_BUTTONS = 99
# Telegram's limit on a callback answer's text.
_MAX_TOAST = 200


class PinModel(CallbackData, prefix="pin"):
    """A keyboard button's data: the catalog id of the model to pin (0 = automatic choice).

    Ids, not names: callback data is limited to 64 bytes and model names can be longer.
    """

    model_id: int


def keyboard(
    models: list[selector_pb2.ModelStats], pinned: str, texts: Texts
) -> InlineKeyboardMarkup:
    """One button per active model (✅ ready, ⏳ not ready now, 📌 pinned), then "automatic"."""
    builder = InlineKeyboardBuilder()
    for model in models[:_MAX_BUTTONS]:
        mark = "📌" if model.name == pinned else "✅"
        if model.name != pinned and model.state != selector_pb2.MODEL_STATE_READY:
            mark = "⏳"
        builder.button(text=f"{mark} {model.name}", callback_data=PinModel(model_id=model.id))
    builder.button(text=texts.models_auto_button, callback_data=PinModel(model_id=0))
    builder.adjust(1)
    return builder.as_markup()


async def on_models(
    message: Message, selector: SelectorClient, pins: ChatPins, texts: Texts
) -> None:
    """The keyboard of models that can be pinned."""
    reply = await selector.model_stats()
    models = [m for m in reply.models if m.is_active]
    if not models:
        await message.answer(texts.models_none)
        return
    pinned = pins.get(message.chat.id)
    text = texts.models_choose
    if pinned:
        text = f"{texts.models_current.format(model=escape(pinned))}\n{text}"
    await message.answer(text, reply_markup=keyboard(models, pinned, texts))


async def on_pin(
    query: CallbackQuery,
    callback_data: PinModel,
    bot: Bot,
    selector: SelectorClient,
    pins: ChatPins,
    texts: Texts,
) -> None:
    """A button was pressed: pin that model (or unpin) for the chat the keyboard is in."""
    if query.message is None:
        await query.answer()
        return
    chat_id, message_id = query.message.chat.id, query.message.message_id
    if callback_data.model_id == 0:
        pins.unpin(chat_id)
        await query.answer()
        await bot.edit_message_text(texts.auto_done, chat_id=chat_id, message_id=message_id)
        return
    reply = await selector.model_stats()
    model = next((m for m in reply.models if m.id == callback_data.model_id), None)
    if model is None:
        await query.answer(texts.models_gone, show_alert=True)
        return
    pins.pin(chat_id, model.name)
    await query.answer(texts.models_pinned_toast.format(model=model.name)[:_MAX_TOAST])
    await bot.edit_message_text(
        texts.models_pinned.format(model=escape(model.name)),
        chat_id=chat_id,
        message_id=message_id,
    )


async def on_auto(message: Message, pins: ChatPins, texts: Texts) -> None:
    """Back to automatic choice."""
    await message.answer(texts.auto_done if pins.unpin(message.chat.id) else texts.auto_already)


def build_router() -> Router:
    """The pinning router."""
    router = Router(name="models")
    router.message.register(on_models, Command("models"))
    router.message.register(on_auto, Command("auto"))
    router.callback_query.register(on_pin, PinModel.filter())
    return router
