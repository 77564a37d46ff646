"""Fixtures for the KIR tests: one valid graph, in its JSON form, that uses every node kind.

Rule tests break exactly one field of it and assert the exact message.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

_VALID: dict[str, Any] = {
    "id": "brief",
    "inputs_schema": {
        "type": "object",
        "properties": {"topic": {"type": "string"}, "docs": {"type": "array"}},
        "required": ["topic"],
    },
    "tools": [{"name": "search", "args_schema": {"type": "object"}}],
    "nodes": [
        {
            "id": "research",
            "kind": "tool",
            "config": {"tool": "search", "args": {"q": "{topic}", "n": 5}},
            "inputs": {"topic": "$input.topic"},
        },
        {
            "id": "summarize",
            "kind": "llm",
            "config": {"model": "openai:gpt-4o-mini", "prompt": "Summarize {hits}"},
            "inputs": {"hits": "research"},
        },
        {
            "id": "route",
            "kind": "router",
            "config": {
                "labels": ["long", "short"],
                "condition": "'long' if len(text) > 100 else 'short'",
            },
            "inputs": {"text": "summarize"},
        },
        {
            "id": "review",
            "kind": "gate",
            "config": {"question": "Approve {text}?"},
            "inputs": {"text": "summarize"},
        },
        {
            "id": "each",
            "kind": "map",
            "config": {
                "over": "$input.docs",
                "node": {
                    "id": "read",
                    "kind": "llm",
                    "config": {"model": "openai:gpt-4o-mini", "prompt": "Read {doc}"},
                    "inputs": {"doc": "$item"},
                },
            },
        },
        {
            "id": "polish",
            "kind": "agent",
            "config": {
                "model": "anthropic:claude-sonnet",
                "instructions": "Polish {draft}",
                "tools": ["search"],
            },
            "inputs": {"draft": "summarize"},
        },
        {
            "id": "cite",
            "kind": "subgraph",
            "config": {"graph": "citations"},
            "inputs": {"text": "summarize"},
        },
        {"id": "pause", "kind": "wait", "config": {"seconds": 5}},
        {
            "id": "fmt",
            "kind": "code",
            "config": {"function": "app.steps:fmt"},
            "inputs": {"s": "summarize"},
        },
    ],
    "edges": [
        {"from": "research", "to": "summarize"},
        {"from": "summarize", "to": "route"},
        {"from": "route", "to": "review", "when": "long"},
        {"from": "route", "to": "polish", "when": "short"},
        {"from": "route", "to": "cite", "when": "short"},
        {"from": "summarize", "to": "fmt"},
    ],
    "subgraphs": [
        {
            "id": "citations",
            "inputs_schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
            "nodes": [
                {
                    "id": "find",
                    "kind": "llm",
                    "config": {"model": "openai:gpt-4o", "prompt": "Cite sources for {t}"},
                    "inputs": {"t": "$input.text"},
                }
            ],
        }
    ],
}


@pytest.fixture
def data() -> dict[str, Any]:
    """A fresh copy of the valid graph's JSON data, free to break."""
    return copy.deepcopy(_VALID)
