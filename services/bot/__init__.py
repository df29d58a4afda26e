"""Telegram bot: people in Telegram ask the Selector through it (aiogram 3, gRPC client)."""
