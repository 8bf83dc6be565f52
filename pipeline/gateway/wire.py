"""The OpenAI wire format (pure): the texts a request forwards, redaction, and what a vendor's
answer says (text, model, token usage), streamed or not. No HTTP here: app.py does the I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

Clean = Callable[[str], str]  # text -> the text with the decided categories redacted


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


def redacted(body: dict[str, Any], operation: str, clean: Clean) -> dict[str, Any]:
    """A copy of `body` with `clean` applied to every text request_texts() returns."""
    body = dict(body)
    if operation == "embeddings":
        data = body["input"]
        body["input"] = clean(data) if isinstance(data, str) else [clean(x) if isinstance(x, str) else x for x in data]
        return body
    messages = []
    for m in body["messages"]:
        m = dict(m)
        if isinstance(m.get("content"), str):
            m["content"] = clean(m["content"])
        elif isinstance(m.get("content"), list):
            m["content"] = [{**p, "text": clean(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str)
                            else p for p in m["content"]]
        messages.append(m)
    body["messages"] = messages
    return body


def usage_tokens(usage: Any) -> tuple[int, int]:
    """(input, output) tokens of an OpenAI `usage` object; 0 for what is absent."""
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens", 0) or 0), int(usage.get("completion_tokens", 0) or 0)


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
    text = "\n".join(c.get("message", {}).get("content") or "" for c in data.get("choices", []) if isinstance(c, dict))
    return ChatAnswer(data.get("model"), text, *usage_tokens(data.get("usage")))


def embeddings_answer(data: Any) -> ChatAnswer:
    """An embeddings answer's model and input tokens (no text, no output); empty when it is not a JSON object."""
    if not isinstance(data, dict):
        return ChatAnswer()
    return ChatAnswer(data.get("model"), None, usage_tokens(data.get("usage"))[0], 0)


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
            self.model = chunk.get("model") or self.model
            self.usage = chunk.get("usage") or self.usage
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if isinstance(content, str):
                    self.parts.append(content)

    def answer(self) -> ChatAnswer:
        return ChatAnswer(self.model, "".join(self.parts), *usage_tokens(self.usage))
