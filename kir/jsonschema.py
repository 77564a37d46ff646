"""The JSON Schema of KIR graph files, for editors, other languages and the golden test.

pydantic generates the schema of the models; this module adjusts it to the JSON form of a
graph, where a node's ``kind`` is written on the node and selects its config schema
(``if``/``then`` on ``kind``), and ``version`` is the constant :data:`~kir.schema.KIR_VERSION`.
The result is deterministic: :func:`kir_json_schema_text` is the golden file's exact content.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any, Final

from kir.schema import _CONFIGS, KIR_VERSION, NODE_KINDS, Graph

__all__ = ["SCHEMA_ID", "kir_json_schema", "kir_json_schema_text"]

SCHEMA_ID: Final = f"https://foldline.dev/schema/kir/v{KIR_VERSION}.json"


@cache
def _build() -> dict[str, Any]:
    schema = Graph.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema["$defs"]
    for d in defs.values():
        # Docstrings are written for Python readers; the first paragraph is the summary.
        if "description" in d:
            d["description"] = d["description"].split("\n\n")[0].replace("\n", " ")
    for cls in _CONFIGS.values():
        del defs[cls.__name__]["properties"]["kind"]
    node = defs["Node"]
    node["properties"] = {
        "id": node["properties"]["id"],
        "kind": {"enum": list(NODE_KINDS), "title": "Kind"},
        **{k: v for k, v in node["properties"].items() if k != "id"},
    }
    node["properties"]["config"] = {
        "title": "Config",
        "description": "The kind's config (see the if/then rules on kind).",
        "type": "object",
    }
    node["required"] = ["id", "kind", "config"]
    node["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {"properties": {"config": {"$ref": f"#/$defs/{cls.__name__}"}}},
        }
        for kind, cls in _CONFIGS.items()
    ]
    version = {"const": KIR_VERSION, "default": KIR_VERSION, "title": "Version"}
    defs["Graph"]["properties"]["version"] = version
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "x-kir-version": KIR_VERSION,
        **schema,
    }


def kir_json_schema() -> dict[str, Any]:
    """The JSON Schema of a KIR graph document (a fresh copy; mutate freely)."""
    return copy.deepcopy(_build())


def kir_json_schema_text() -> str:
    """The schema as stable text: sorted keys, two-space indent, final newline."""
    # Human-facing text, not hashed or recorded: stdlib json's pretty printer is fine here.
    return json.dumps(_build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
