"""The exported JSON Schema of KIR is a golden file: a schema change fails here until the
golden is regenerated on purpose, with ``FOLDLINE_REGEN_GOLDEN=1``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kir import KIR_VERSION, NODE_KINDS, kir_json_schema, kir_json_schema_text

GOLDEN = Path(__file__).parent / "golden" / "kir.schema.json"


def test_schema_matches_golden() -> None:
    current = kir_json_schema_text()
    if os.environ.get("FOLDLINE_REGEN_GOLDEN") == "1":
        GOLDEN.write_text(current, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} is missing; run with FOLDLINE_REGEN_GOLDEN=1"
    golden = GOLDEN.read_text(encoding="utf-8")
    assert current == golden, (
        "the KIR JSON Schema changed. If that is intended, bump KIR_VERSION when old graphs "
        "no longer validate, then regenerate the golden:\n"
        "    FOLDLINE_REGEN_GOLDEN=1 .venv/bin/pytest tests/kir/test_jsonschema.py\n"
        "and review the diff of tests/kir/golden/kir.schema.json."
    )


def test_schema_shape() -> None:
    schema = kir_json_schema()
    assert schema["x-kir-version"] == KIR_VERSION
    node = schema["$defs"]["Node"]
    assert node["properties"]["kind"]["enum"] == list(NODE_KINDS)
    assert node["required"] == ["id", "kind", "config"]
    assert [rule["if"]["properties"]["kind"]["const"] for rule in node["allOf"]] == list(NODE_KINDS)
    assert "kind" not in schema["$defs"]["LlmConfig"]["properties"]
    assert schema["$defs"]["Edge"]["required"] == ["from", "to"]
    # A fresh copy each time: callers may mutate it.
    schema["$defs"].clear()
    assert kir_json_schema()["$defs"]


def test_schema_text_is_json() -> None:
    assert json.loads(kir_json_schema_text()) == kir_json_schema()
