"""What each wire format sends for a conversation: roles, options, JSON mode, streaming."""

from __future__ import annotations

from aiselector.v1 import common_pb2
from services.selector.providers import ChatRequest, Message, Target
from services.selector.providers.gemini import GeminiFormat
from services.selector.providers.openai import OpenAIFormat
from services.selector.providers.wire import JSON_INSTRUCTION

CONVERSATION = (
    Message("system", "Be brief."),
    Message("system", "Use English."),
    Message("user", "Hi"),
    Message("assistant", "Hello!"),
    Message("user", "What is 2+2?"),
    Message("user", "Only the number."),
)
OPTIONS = {"temperature": 0.2, "top_p": 0.9, "stop": ("END", "STOP"), "max_output_tokens": 64}


def target(api_format: int, **fields: object) -> Target:
    return Target(provider="p", model="m", api_format=api_format, base_url="http://h/v1", **fields)


OPENAI = target(common_pb2.API_FORMAT_OPENAI)
GEMINI = target(common_pb2.API_FORMAT_GEMINI)


def test_openai_sends_the_conversation_as_it_is_with_every_option():
    call = OpenAIFormat().build(OPENAI, ChatRequest(CONVERSATION, **OPTIONS))

    assert call.body["messages"] == [{"role": m.role, "content": m.content} for m in CONVERSATION]
    assert (call.body["temperature"], call.body["top_p"]) == (0.2, 0.9)
    assert call.body["stop"] == ["END", "STOP"]
    assert call.body["max_tokens"] == 64
    assert call.body["stream"] is False
    assert "stream_options" not in call.body


def test_openai_leaves_out_options_not_asked_for():
    call = OpenAIFormat().build(OPENAI, ChatRequest.from_prompt("Hi"))

    assert call.body["messages"] == [{"role": "user", "content": "Hi"}]
    assert not {"temperature", "top_p", "stop", "response_format"} & call.body.keys()


def test_an_openai_stream_asks_for_usage():
    call = OpenAIFormat().build(OPENAI, ChatRequest.from_prompt("Hi"), stream=True)

    assert call.body["stream"] is True
    assert call.body["stream_options"] == {"include_usage": True}
    assert call.url == "http://h/v1/chat/completions"


def test_gemini_maps_roles_merges_turns_and_moves_system_messages_out():
    call = GeminiFormat().build(GEMINI, ChatRequest(CONVERSATION, **OPTIONS))

    assert call.body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nUse English."}]}
    assert call.body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "What is 2+2?"}, {"text": "Only the number."}]},
    ]
    config = call.body["generationConfig"]
    assert (config["temperature"], config["topP"]) == (0.2, 0.9)
    assert config["stopSequences"] == ["END", "STOP"]
    assert config["maxOutputTokens"] == 64
    assert call.url == "http://h/v1/models/m:generateContent"


def test_a_gemini_stream_uses_server_sent_events():
    call = GeminiFormat().build(GEMINI, ChatRequest.from_prompt("Hi"), stream=True)

    assert call.url == "http://h/v1/models/m:streamGenerateContent?alt=sse"
    assert "systemInstruction" not in call.body


def test_json_mode_ends_the_first_system_message_or_adds_one():
    with_system = ChatRequest(CONVERSATION, json_mode=True)
    without = ChatRequest.from_prompt("Hi", json_mode=True)

    sent = OpenAIFormat().build(OPENAI, with_system).body["messages"]
    assert sent[0] == {"role": "system", "content": f"Be brief.\n\n{JSON_INSTRUCTION}"}
    assert sent[1:] == [{"role": m.role, "content": m.content} for m in CONVERSATION[1:]]
    assert OpenAIFormat().build(OPENAI, without).body["messages"][0] == {
        "role": "system",
        "content": JSON_INSTRUCTION,
    }
    gemini = GeminiFormat().build(GEMINI, without).body
    assert gemini["systemInstruction"] == {"parts": [{"text": JSON_INSTRUCTION}]}


def test_a_prompt_is_a_two_message_conversation():
    assert ChatRequest.from_prompt("Hi", "Be brief.").messages == (
        Message("system", "Be brief."),
        Message("user", "Hi"),
    )
    assert ChatRequest.from_prompt("Hi").messages == (Message("user", "Hi"),)
