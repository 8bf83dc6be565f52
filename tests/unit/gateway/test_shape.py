"""Request bodies of known shape only, and every forwarded string classified and redacted (issue 10 item 4)."""

from __future__ import annotations

import copy

import pytest

from aiaudit.pipeline.gateway import shape
from aiaudit.pipeline.gateway.classify import Classifier, redact

AWS = "AKIAIOSFODNN7EXAMPLE"
C = Classifier()


def chat(**extra):
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **extra}


# Where a secret hid and reached the vendor with decision `allow` before (each reproduced).
HIDING_PLACES = [
    chat(messages=[{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": f'{{"key": "{AWS}"}}'}}]}]),
    chat(messages=[{"role": "user", "name": AWS, "content": "hi"}]),
    chat(tools=[{"type": "function", "function": {"name": "f", "description": f"use {AWS}"}}]),
    chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        AWS: {"type": "string"}}}}}]),  # a property name
    chat(messages=[{"role": "user", "content": [{"type": "text", "text": f"x {AWS}"}]}]),
    chat(stop=[AWS]),
    chat(metadata={"note": AWS}),
    {"model": "e", "input": [f"a {AWS}", "b"]},
]


@pytest.mark.parametrize("body", HIDING_PLACES)
def test_every_forwarded_string_is_classified(body):
    operation = "embeddings" if "input" in body else "chat"
    shape.check(operation, body)  # each is a legitimate shape ...
    assert "secret.aws_key" in C.classify_all(shape.strings(body)).categories  # ... and is seen


@pytest.mark.parametrize(("body", "where"), [
    (chat(messages=[{"role": "user", "content": {"text": AWS}}]), "messages[0].content: must be a list"),
    (chat(messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}]), "messages[0].content[0].type"),
    (chat(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role: must be one of"),
    (chat(messages=[{"role": "user", "content": "x", "secret_field": AWS}]), "messages[0].secret_field: is not a field"),
    (chat(extra_thing=AWS), "extra_thing: is not a field the gateway forwards"),
    (chat(stream="false"), "stream: must be true or false"),
    (chat(temperature="hot"), "temperature: must be a number"),
    (chat(tools=[{"type": "function", "function": {"description": "no name"}}]), "tools[0].function.name: is missing"),
    (chat(messages=[]), "messages: must be a list of 1 to"),
    ({"model": "gpt-4o"}, "messages: is missing"),
    ({"model": "e", "input": [["a", "b"]]}, "input: must be a string, a list of strings"),
    ({"model": "e", "input": ["a", 1]}, "input: must be a string, a list of strings"),
    ({"model": "e", "input": {"x": 1}}, "input: must be a string or a list"),
    (chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {"a": [[[[[[[[]]]]]]]]}}}]), None),
])
def test_unknown_shapes_are_refused_naming_the_field(body, where):
    operation = "embeddings" if "input" in body else "chat"
    if where is None:
        shape.check(operation, body)  # deep but bounded JSON in a schema is fine
        return
    with pytest.raises(shape.ShapeError, match=where.replace("[", r"\[").replace("]", r"\]")):
        shape.check(operation, body)


def test_a_route_can_let_a_named_extra_field_through_and_its_strings_are_still_seen():
    body = chat(vendor_hint={"note": AWS})
    with pytest.raises(shape.ShapeError):
        shape.check("chat", body)
    shape.check("chat", body, frozenset({"vendor_hint"}))
    assert AWS in list(shape.strings(body))


def test_token_arrays_are_accepted_for_embeddings():
    shape.check("embeddings", {"model": "e", "input": [1, 2, 3]})
    shape.check("embeddings", {"model": "e", "input": [[1, 2], [3]]})


def test_redaction_reaches_every_forwarded_string_and_leaves_the_request_alone():
    body = chat(messages=[{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "send", "arguments": '{"to": "bob@example.com"}'}}]},
        {"role": "user", "name": "bob@example.com", "content": [{"type": "text", "text": "mail bob@example.com"}]}],
        tools=[{"type": "function", "function": {"name": "send", "description": "writes to bob@example.com"}}])
    before = copy.deepcopy(body)
    cats = frozenset({"pii.email"})
    out = shape.transform(body, lambda t: redact(t, C.classify(t), cats))
    assert "bob@example.com" not in str(out)
    assert out["messages"][0]["tool_calls"][0]["function"]["arguments"] == '{"to": "[REDACTED:pii.email]"}'
    assert out["model"] == "gpt-4o" and out["messages"][1]["role"] == "user"  # structural values untouched
    assert body == before


def test_structural_values_are_not_classified_but_everything_else_is():
    body = chat(tools=[{"type": "function", "function": {"name": "f"}}])
    found = list(shape.strings(body))
    assert "gpt-4o" not in found and "user" not in found  # the model and role values
    assert "hi" in found and "f" in found and "messages" in found  # texts, names, and keys


@pytest.mark.parametrize("key", ["type", "model", "role", "detail", "format", "encoding_format"])
def test_a_secret_under_a_structural_name_in_free_form_json_is_classified(key):
    """Only the documented enumerations at their own places are exempt: the same key inside
    metadata, a tool's parameter schema, a response schema or an extra field is free text."""
    body = chat(metadata={key: AWS},
                tools=[{"type": "function", "function": {"name": "f", "parameters": {
                    "type": "object", "properties": {"x": {key: AWS}}}}}],
                response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": {key: [AWS]}}},
                vendor_hint={"deep": {key: AWS}})
    shape.check("chat", body, frozenset({"vendor_hint"}))
    assert list(shape.strings(body)).count(AWS) == 4
    cats = frozenset(C.classify(AWS).categories)
    out = shape.transform(body, lambda t: redact(t, C.classify(t), cats))
    assert AWS not in str(out)
