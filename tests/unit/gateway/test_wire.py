"""The OpenAI wire format, pure: which texts a request forwards, redaction, answers and streams."""

from __future__ import annotations

import orjson
import pytest

from aiaudit.pipeline.gateway import wire


def test_chat_texts_take_string_and_part_contents_and_refuse_malformed_messages():
    body = {"messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url"}]}]}
    assert wire.chat_texts(body) == ["be brief", "hello"]
    assert wire.chat_texts({"messages": []}) is None
    assert wire.chat_texts({"messages": ["not an object"]}) is None
    assert wire.chat_texts({}) is None


def test_embedding_texts_accept_strings_and_token_arrays_only():
    assert wire.embedding_texts({"input": "one"}) == ["one"]
    assert wire.embedding_texts({"input": ["a", "b"]}) == ["a", "b"]
    assert wire.embedding_texts({"input": [1, 2, 3]}) == []
    assert wire.embedding_texts({"input": 5}) is None
    assert wire.request_texts("embeddings", {"input": "x"}) == ["x"]
    assert wire.request_texts("chat", {"input": "x"}) is None


def test_chat_answer_reads_text_model_and_usage():
    data = {"model": "gpt-x", "choices": [{"message": {"content": "hi"}}, {"message": {"content": "there"}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3}}
    assert wire.chat_answer(data) == wire.ChatAnswer("gpt-x", "hi\nthere", 12, 3)
    assert wire.chat_answer(["not", "an", "object"]) is None
    assert wire.chat_answer({"choices": []}) == wire.ChatAnswer(None, "", 0, 0)


def test_usage_tokens_default_to_zero_and_embeddings_have_no_output():
    assert wire.usage_tokens(None) == (0, 0)
    assert wire.usage_tokens({"prompt_tokens": None}) == (0, 0)
    assert wire.embeddings_answer({"model": "e", "usage": {"prompt_tokens": 4, "completion_tokens": 9}}) == \
        wire.ChatAnswer("e", None, 4, 0)
    assert wire.embeddings_answer("garbage") == wire.ChatAnswer()


def test_stream_tally_collects_deltas_model_and_final_usage_and_skips_junk():
    tally = wire.StreamTally()
    for chunk in ({"model": "m1", "choices": [{"delta": {"content": "Hel"}}]},
                  {"choices": [{"delta": {"content": "lo"}}, {"delta": {}}]},
                  {"choices": [{"delta": {"content": 5}}]},  # not text: passed over
                  {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}):
        tally.add(orjson.dumps(chunk))
    tally.add(b"{not json")
    tally.add(b"[1, 2]")
    assert tally.answer() == wire.ChatAnswer("m1", "Hello", 2, 1)


def test_sse_data_joins_data_lines():
    assert wire.sse_data(b"event: x\ndata: {\"a\":1}\n\n") == b'{"a":1}'
    assert wire.sse_data(b"data: [DONE]\n\n") == wire.DONE
    assert wire.sse_data(b": comment\n\n") == b""


HOSTILE_ANSWERS = [
    {"choices": [{"message": "a string"}]},
    {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": "x", "completion_tokens": [1]}},
    {"choices": "x"}, {"model": 5, "choices": []}, {"choices": [None, 3, []]},
    {"usage": "x", "choices": [{"message": {"content": ["a"]}}]},
    {"usage": {"prompt_tokens": -3, "completion_tokens": 2**40}, "choices": [{"message": None}]},
    {"usage": {"prompt_tokens": True, "completion_tokens": 1.5}},
]


@pytest.mark.parametrize("data", HOSTILE_ANSWERS)
def test_a_malformed_vendor_answer_never_raises_and_yields_only_contract_types(data):
    """A vendor's answer of any shape is recorded (an upstream oddity), never a 500 without an event."""
    from aiaudit.pipeline.gateway.wire import MAX_TOKENS, chat_answer, embeddings_answer

    for answer in (chat_answer(data), embeddings_answer(data)):
        assert answer.model is None or isinstance(answer.model, str)
        assert answer.text is None or isinstance(answer.text, str)
        assert all(type(n) is int and 0 <= n <= MAX_TOKENS for n in (answer.input_tokens, answer.output_tokens))


def test_a_malformed_stream_chunk_is_passed_over():
    from aiaudit.pipeline.gateway.wire import StreamTally

    tally = StreamTally()
    for data in (b'{"choices": "x"}', b'{"choices": [{"delta": "s"}]}', b'{"model": 7, "usage": "u"}',
                 b'{"choices": [{"delta": {"content": "ok"}}], "model": "m"}', b"[1, 2]", b"not json"):
        tally.add(data)
    answer = tally.answer()
    assert answer.text == "ok" and answer.model == "m" and (answer.input_tokens, answer.output_tokens) == (0, 0)
