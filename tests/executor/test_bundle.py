"""Run bundles: export, read back, import, and every way a bundle can be damaged."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from executor.api import run
from executor.bundle import Bundle, BundleError, export_run, import_run, read_bundle
from executor.errors import RunNotFound
from kir import Edge, Graph, Node
from kir.schema import LlmConfig
from substrate import MemoryStore, MockModel, SQLiteStore, StepClock
from substrate.blobs import pack
from substrate.codec import decode, digest, encode
from substrate.events import (
    SCHEMA_VERSION,
    BlobRef,
    GateOpened,
    ModelCalled,
    RunStarted,
    SignalReceived,
    decode_event,
    event_bytes,
    seal,
)
from substrate.stores.base import EventStore
from substrate.upcast import downcast_to_v0
from tests.executor.helpers import code

BIG = "tides " * 1000  # > 4 KiB: the inputs and the prompt become blobs


def _graph() -> Graph:
    return Graph(
        nodes=[
            Node(
                id="ask",
                config=LlmConfig(model="mock:m", prompt="Summarize {topic}"),
                inputs={"topic": "$input.topic"},
            ),
            code("size", "length", {"items": "ask"}),
        ],
        edges=[Edge("ask", "size")],
        output="size",
    )


def _record(topic: str = "tides") -> tuple[MemoryStore, str]:
    store = MemoryStore()
    model = MockModel(["a short summary"], price_in=1.0, price_out=2.0)
    res = run(_graph(), {"topic": topic}, store=store, model=model, clock=StepClock())
    assert res.status == "completed"
    return store, res.run_id


def _bytes(store: EventStore, run_id: str) -> list[bytes]:
    return [event_bytes(e) for e in store.read(run_id)]


@pytest.fixture
def recorded() -> tuple[MemoryStore, str]:
    return _record(BIG)


@pytest.fixture
def bundle_dir(recorded: tuple[MemoryStore, str], tmp_path: Path) -> Path:
    store, run_id = recorded
    return export_run(store, run_id, tmp_path / "case", case={"description": "a summary"})


@pytest.fixture(params=["memory", "sqlite"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    store: EventStore = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "r.db")
    )
    yield store
    store.close()


# -- the layout ------------------------------------------------------------------------


def test_export_writes_the_golden_layout(
    recorded: tuple[MemoryStore, str], bundle_dir: Path
) -> None:
    store, run_id = recorded
    log = store.read(run_id)
    started = log[0].data
    assert isinstance(started, RunStarted)
    assert sorted(p.name for p in bundle_dir.iterdir()) == [
        "blobs", "case.toml", "events.jsonl", "graph.json",
    ]  # fmt: skip
    assert (bundle_dir / "events.jsonl").read_bytes() == b"".join(
        b + b"\n" for b in _bytes(store, run_id)
    )
    graph_text = (bundle_dir / "graph.json").read_text()
    assert graph_text.startswith('{\n  "description"')  # pretty, keys sorted
    assert encode(decode(graph_text.encode())) == store.get_graph(started.graph_hash)
    case = tomllib.loads((bundle_dir / "case.toml").read_text())
    assert case == {"description": "a summary", "run_id": run_id}


def test_every_referenced_blob_is_exported(
    recorded: tuple[MemoryStore, str], bundle_dir: Path
) -> None:
    store, run_id = recorded
    log = store.read(run_id)
    started = log[0].data
    assert isinstance(started, RunStarted)
    assert isinstance(started.inputs, BlobRef)
    (called,) = [e.data for e in log if isinstance(e.data, ModelCalled)]
    assert isinstance(called.request, BlobRef)
    names = sorted(p.name for p in (bundle_dir / "blobs").iterdir())
    assert names == sorted({started.inputs.digest, called.request.digest})
    for name in names:
        assert (bundle_dir / "blobs" / name).read_bytes() == store.get_blob(name)


def test_blobs_are_found_in_any_payload_field(tmp_path: Path) -> None:
    store, run_id = _record()
    blobs: dict[str, bytes] = {}
    args, payload = pack({"to": "x" * 5000}, blobs), pack(["y" * 5000], blobs)
    assert isinstance(args, BlobRef)
    assert isinstance(payload, BlobRef)
    drafts = [
        (1, "g", GateOpened(gate="g1", tool="send", args_hash="h", args=args)),
        (2, None, SignalReceived(name="s", payload=payload)),
    ]
    events, bodies, _ = seal(store.head(run_id), drafts)
    store.append(run_id, events[0].seq, events, bodies=bodies, blobs=blobs)
    path = export_run(store, run_id, tmp_path / "c")
    assert sorted(p.name for p in (path / "blobs").iterdir()) == sorted(blobs)
    fresh = MemoryStore()
    import_run(fresh, path)
    assert _bytes(fresh, run_id) == _bytes(store, run_id)
    assert all(fresh.get_blob(key) == body for key, body in blobs.items())


def test_a_run_without_blobs_has_an_empty_blobs_dir(tmp_path: Path) -> None:
    store, run_id = _record()
    path = export_run(store, run_id, tmp_path / "small")
    assert list((path / "blobs").iterdir()) == []
    assert read_bundle(path).blobs == {}


# -- round trips -----------------------------------------------------------------------


def test_export_then_import_gives_identical_bytes_and_blobs(
    recorded: tuple[MemoryStore, str], bundle_dir: Path, fresh: EventStore
) -> None:
    store, run_id = recorded
    assert import_run(fresh, bundle_dir) == run_id  # the id comes from case.toml
    assert _bytes(fresh, run_id) == _bytes(store, run_id)
    bundle = read_bundle(bundle_dir)
    assert bundle.blobs
    for key, body in bundle.blobs.items():
        assert fresh.get_blob(key) == body == store.get_blob(key)
    started = fresh.read(run_id)[0].data
    assert isinstance(started, RunStarted)
    assert fresh.get_graph(started.graph_hash) == store.get_graph(started.graph_hash)


def test_read_bundle_returns_the_verified_run(
    recorded: tuple[MemoryStore, str], bundle_dir: Path
) -> None:
    store, run_id = recorded
    bundle = read_bundle(bundle_dir)
    assert isinstance(bundle, Bundle)
    assert bundle.events == store.read(run_id)
    assert bundle.bodies == _bytes(store, run_id)
    assert bundle.schema_version == SCHEMA_VERSION
    assert bundle.graph["nodes"][0]["id"] == "ask"
    assert bundle.case["description"] == "a summary"


def test_a_reexported_import_is_the_same_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    run_id = import_run(store, bundle_dir)
    again = export_run(store, run_id, tmp_path / "again", case={"description": "a summary"})
    for name in ("graph.json", "events.jsonl", "case.toml"):
        assert (again / name).read_bytes() == (bundle_dir / name).read_bytes()


def test_import_names_the_run(bundle_dir: Path, tmp_path: Path) -> None:
    store = MemoryStore()
    assert import_run(store, bundle_dir, run_id="copy") == "copy"
    (bundle_dir / "case.toml").write_text('description = "no id"\n')
    assert import_run(store, bundle_dir) == "case"  # the directory's name


def test_import_refuses_an_existing_run(bundle_dir: Path) -> None:
    store = MemoryStore()
    run_id = import_run(store, bundle_dir)
    with pytest.raises(BundleError, match=f"run '{run_id}' already exists in the store"):
        import_run(store, bundle_dir)
    assert len(store.list_runs()) == 1


# -- export refusals -------------------------------------------------------------------


def test_export_refuses_a_non_empty_directory_unless_overwriting(
    recorded: tuple[MemoryStore, str], bundle_dir: Path
) -> None:
    store, run_id = recorded
    with pytest.raises(BundleError, match=r"case: not empty \(pass overwrite=True"):
        export_run(store, run_id, bundle_dir)
    stale = bundle_dir / "blobs" / ("0" * 64)
    stale.write_bytes(b"old")
    (bundle_dir / "README.md").write_text("kept")
    export_run(store, run_id, bundle_dir, overwrite=True)
    assert not stale.exists()
    assert (bundle_dir / "README.md").read_text() == "kept"
    assert read_bundle(bundle_dir).bodies == _bytes(store, run_id)


def test_export_of_an_unknown_run(tmp_path: Path) -> None:
    with pytest.raises(RunNotFound):
        export_run(MemoryStore(), "nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_case_values_round_trip_through_toml(tmp_path: Path) -> None:
    store, run_id = _record()
    case: dict[str, Any] = {
        "description": 'quotes " and \\ back\nslash\t\x7f\x01 ünï',
        "expect": "nondeterminism",
        "events": 7,
        "negative": -3,
        "must_fail": True,
        "ok": False,
        "odd key.with dots": "x",
    }
    path = export_run(store, run_id, tmp_path / "c", case=case)
    assert read_bundle(path).case == {**case, "run_id": run_id}


@pytest.mark.parametrize("value", [1.5, None, [1], {"a": 1}])
def test_case_values_must_be_flat(value: Any, tmp_path: Path) -> None:
    store, run_id = _record()
    with pytest.raises(TypeError, match="case value 'k' must be a str, int or bool"):
        export_run(store, run_id, tmp_path / "c", case={"k": value})
    assert not (tmp_path / "c").exists()  # nothing written


# -- damaged bundles -------------------------------------------------------------------


def _lines(bundle_dir: Path) -> list[bytes]:
    return (bundle_dir / "events.jsonl").read_bytes().splitlines()


def _write(bundle_dir: Path, lines: list[bytes]) -> None:
    (bundle_dir / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def _raises(bundle_dir: Path, message: str) -> None:
    with pytest.raises(BundleError) as exc:
        read_bundle(bundle_dir)
    assert str(exc.value) == message.format(dir=bundle_dir)


@pytest.mark.parametrize("name", ["graph.json", "events.jsonl", "case.toml"])
def test_a_missing_file(bundle_dir: Path, name: str) -> None:
    (bundle_dir / name).unlink()
    _raises(bundle_dir, f"{{dir}}/{name}: missing")


def test_a_missing_directory(tmp_path: Path) -> None:
    _raises(tmp_path / "nope", "{dir}: no such bundle directory")


def test_a_line_that_is_not_json(bundle_dir: Path) -> None:
    lines = _lines(bundle_dir)
    lines[2] = b'{"seq": 2, oops'
    _write(bundle_dir, lines)
    with pytest.raises(
        BundleError, match=r"/events\.jsonl line 3: not a valid event \(JSON is malformed"
    ):
        read_bundle(bundle_dir)


def test_a_broken_chain(bundle_dir: Path) -> None:
    lines = _lines(bundle_dir)
    lines[3] = lines[3].replace(b'"node":"ask"', b'"node":"asx"')
    _write(bundle_dir, lines)
    with pytest.raises(
        BundleError, match=r"/events\.jsonl line 5: prev is '[0-9a-f]+' but the hash"
    ):
        read_bundle(bundle_dir)


def test_a_line_not_in_canonical_form(bundle_dir: Path) -> None:
    lines = _lines(bundle_dir)
    last = decode(lines[-1])
    lines[-1] = encode(last)  # sorted keys: valid JSON, the same event, other bytes
    assert lines[-1] != _lines(bundle_dir)[-1]
    _write(bundle_dir, lines)
    n = len(lines)
    _raises(
        bundle_dir,
        f"{{dir}}/events.jsonl line {n}: not in canonical form "
        "(re-encoding the event changes its bytes)",
    )


def test_an_empty_line(bundle_dir: Path) -> None:
    lines = _lines(bundle_dir)
    _write(bundle_dir, [*lines[:2], b"", *lines[2:]])
    _raises(bundle_dir, "{dir}/events.jsonl line 3: empty line")


def test_no_events(bundle_dir: Path) -> None:
    _write(bundle_dir, [])
    _raises(bundle_dir, "{dir}/events.jsonl: no events")


def test_crlf_newlines_are_read_as_written(bundle_dir: Path) -> None:
    lines = _lines(bundle_dir)
    (bundle_dir / "events.jsonl").write_bytes(b"".join(line + b"\r\n" for line in lines))
    assert read_bundle(bundle_dir).bodies == lines


def test_a_missing_blob(bundle_dir: Path) -> None:
    blob = next((bundle_dir / "blobs").iterdir())
    blob.unlink()
    line = 1 + next(i for i, line in enumerate(_lines(bundle_dir)) if blob.name.encode() in line)
    _raises(
        bundle_dir, f"{{dir}}/blobs/{blob.name}: missing (referred to by events.jsonl line {line})"
    )


def test_a_corrupt_blob(bundle_dir: Path) -> None:
    blob = next((bundle_dir / "blobs").iterdir())
    blob.write_bytes(blob.read_bytes()[:-2] + b'x"')
    _raises(
        bundle_dir,
        f"{{dir}}/blobs/{blob.name}: corrupt, its bytes hash to {digest(blob.read_bytes())}",
    )


def test_a_blob_reference_is_never_a_path(bundle_dir: Path) -> None:
    lines = _lines(bundle_dir)
    first = decode(lines[0])
    first["data"]["inputs"]["digest"] = "../../outside"
    lines[0] = encode(decode_event(encode(first)))
    _write(bundle_dir, _rechained(lines))
    _raises(bundle_dir, "{dir}/events.jsonl line 1: blob '../../outside' is not a digest")


def test_a_blob_of_another_size(bundle_dir: Path) -> None:
    lines = _lines(bundle_dir)
    first = decode(lines[0])
    first["data"]["inputs"]["size"] += 1
    lines[0] = encode(decode_event(encode(first)))
    _write(bundle_dir, _rechained(lines))
    ref = first["data"]["inputs"]
    _raises(
        bundle_dir,
        f"{{dir}}/blobs/{ref['digest']}: {ref['size'] - 1} bytes, "
        f"but events.jsonl line 1 says {ref['size']}",
    )


def _rechained(lines: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for line in lines:
        ev = decode_event(line)
        out.append(encode(msgspec.structs.replace(ev, prev=digest(out[-1]) if out else None)))
    return out


def test_a_graph_that_does_not_match(bundle_dir: Path) -> None:
    graph = decode((bundle_dir / "graph.json").read_bytes())
    recorded = read_bundle(bundle_dir).events[0].data
    assert isinstance(recorded, RunStarted)
    graph["nodes"][0]["config"]["prompt"] = "Summarise {topic}"
    (bundle_dir / "graph.json").write_bytes(encode(graph))
    _raises(
        bundle_dir,
        "{dir}/graph.json: the graph hashes to "
        f"{digest(_canonical_graph(graph))}, but run.started (events.jsonl line 1) "
        f"records {recorded.graph_hash}",
    )


def _canonical_graph(data: dict[str, Any]) -> bytes:
    from kir import compile_graph, parse_graph

    return compile_graph(parse_graph(data)).canonical


def test_a_graph_that_is_not_json(bundle_dir: Path) -> None:
    (bundle_dir / "graph.json").write_text("{")
    with pytest.raises(BundleError, match=r"/graph\.json: not valid JSON \("):
        read_bundle(bundle_dir)


def test_a_graph_that_is_not_kir(bundle_dir: Path) -> None:
    (bundle_dir / "graph.json").write_text('{"nodes": 3}')
    with pytest.raises(BundleError, match=r"/graph\.json: not a valid KIR graph: "):
        read_bundle(bundle_dir)


def test_a_case_that_is_not_toml(bundle_dir: Path) -> None:
    (bundle_dir / "case.toml").write_text("description = ")
    with pytest.raises(BundleError, match=r"/case\.toml: not valid TOML \("):
        read_bundle(bundle_dir)


def test_a_damaged_bundle_imports_nothing(bundle_dir: Path) -> None:
    next((bundle_dir / "blobs").iterdir()).unlink()
    store = MemoryStore()
    with pytest.raises(BundleError):
        import_run(store, bundle_dir)
    assert store.list_runs() == []


# -- old schema versions ---------------------------------------------------------------


def test_a_v0_bundle_is_lifted_and_imports_as_the_original_run(
    recorded: tuple[MemoryStore, str], bundle_dir: Path, fresh: EventStore
) -> None:
    store, run_id = recorded
    original = _bytes(store, run_id)
    old = downcast_to_v0(_lines(bundle_dir))
    assert old != original
    assert any(b'"cost":' in line for line in old)
    _write(bundle_dir, old)
    bundle = read_bundle(bundle_dir)
    assert bundle.schema_version == 0
    assert bundle.bodies == original
    assert import_run(fresh, bundle_dir) == run_id
    assert _bytes(fresh, run_id) == original


def test_a_bundle_from_a_future_schema_is_refused(bundle_dir: Path) -> None:
    lines = _lines(bundle_dir)
    first = decode(lines[0])
    first["data"]["header"]["schema_version"] = SCHEMA_VERSION + 1
    _write(bundle_dir, [encode(first)])
    _raises(
        bundle_dir,
        f"{{dir}}/events.jsonl line 1: event schema version {SCHEMA_VERSION + 1}: written by a "
        f"newer Foldline (this Foldline reads event schema 0..{SCHEMA_VERSION})",
    )
