"""The OpenAI wire format (pure): the message texts of a request (what content rules keep), and
what a vendor's answer says (text, model, token usage), streamed or not. No HTTP here: app.py
does the I/O; which strings are classified and redacted is shape.py's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson


def chat_texts(body: dict[str, Any]) -> list[str] | None:
    """The message texts of a chat request, or None when `messages` is missing or malformed."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    texts = []
    for m in messages:
        if not isinstance(m, dict):
            return None
        content = m.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return texts


def embedding_texts(body: dict[str, Any]) -> list[str] | None:
    """The input texts of an embeddings request ([] for token arrays), or None when `input` is malformed."""
    data = body.get("input")
    if isinstance(data, str):
        return [data]
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        return list(data)
    if isinstance(data, list):  # token arrays: nothing to classify as text
        return []
    return None


def request_texts(operation: str, body: dict[str, Any]) -> list[str] | None:
    return chat_texts(body) if operation == "chat" else embedding_texts(body)


MAX_TOKENS = 2**31 - 1  # the contract's int


def _count(value: Any) -> int:
    """A token count a vendor gave: a non-negative integer within the contract's int, else 0."""
    return value if type(value) is int and 0 <= value <= MAX_TOKENS else 0


def usage_tokens(usage: Any) -> tuple[int, int]:
    """(input, output) tokens of an OpenAI `usage` object; 0 for what is absent or not a count."""
    if not isinstance(usage, dict):
        return 0, 0
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _model(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ChatAnswer:
    """What a vendor's chat or embeddings answer says, for the event."""

    model: str | None = None
    text: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0


def chat_answer(data: Any) -> ChatAnswer | None:
    """A chat completion's text, model and usage; None when it is not a JSON object."""
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    texts = []
    for choice in choices if isinstance(choices, list) else []:
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
    return ChatAnswer(_model(data.get("model")), "\n".join(texts), *usage_tokens(data.get("usage")))


def embeddings_answer(data: Any) -> ChatAnswer:
    """An embeddings answer's model and input tokens (no text, no output); empty when it is not a JSON object."""
    if not isinstance(data, dict):
        return ChatAnswer()
    return ChatAnswer(_model(data.get("model")), None, usage_tokens(data.get("usage"))[0], 0)


def sse_data(event: bytes) -> bytes:
    """The data of one server-sent event (its `data:` lines joined)."""
    return b"\n".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))


DONE = b"[DONE]"


@dataclass
class StreamTally:
    """What a streamed chat has said so far: its text, model and usage, from each chunk's data."""

    parts: list[str] = field(default_factory=list)
    model: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)

    def add(self, data: bytes) -> None:
        """Take in one chunk's data; a chunk that is not the expected JSON is passed over."""
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
            chunk = orjson.loads(data)
            self.model = _model(chunk.get("model")) or self.model
            self.usage = chunk.get("usage") if isinstance(chunk.get("usage"), dict) else self.usage
            choices = chunk.get("choices")
            for choice in choices if isinstance(choices, list) else []:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str):
                    self.parts.append(content)

    def answer(self) -> ChatAnswer:
        return ChatAnswer(self.model, "".join(self.parts), *usage_tokens(self.usage))
