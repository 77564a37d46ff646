from __future__ import annotations

import pytest

from substrate.blobs import pack
from substrate.codec import decode, digest, encode
from substrate.errors import ChainBroken, LogCorrupt
from substrate.events import (
    SCHEMA_VERSION,
    ClockRead,
    Head,
    Inline,
    LogHeader,
    ModelCalled,
    NodeCompleted,
    NodeStarted,
    RunCompleted,
    RunStarted,
    Usage,
    decode_event,
    seal,
)
from substrate.upcast import (
    IMPLICIT_VERSION,
    UPCASTERS,
    UnsupportedSchemaVersion,
    downcast_to_v0,
    log_version,
    upcast_log,
)

FLAGGED = LogHeader(flags={"engine": 1})


def _log(header: LogHeader = FLAGGED) -> list[bytes]:
    blobs: dict[str, bytes] = {}
    drafts = [
        (
            10,
            None,
            RunStarted(graph_hash="g" * 64, inputs=Inline({"t": 1}), seed="00", header=header),
        ),
        (11, "ask", NodeStarted()),
        (
            12,
            "ask",
            ModelCalled(
                call=0,
                model="mock:m",
                request_hash="r" * 64,
                request=pack("x" * 5000, blobs),
                response=Inline({"content": "hi", "cost_usd": 0.25}),
                usage=Usage(3, 4),
                cost_usd=0.001257,
            ),
        ),
        (13, "ask", ClockRead(call=1, value=99)),
        (14, "ask", NodeCompleted(output=Inline({"answer": "hi"}), route=["a"])),
        (15, None, RunCompleted(output=Inline("hi"))),
    ]
    _, bodies, _ = seal(Head(), drafts)
    return bodies


def _chained(lines: list[bytes]) -> bool:
    prev = None
    for seq, line in enumerate(lines):
        raw = decode(line)
        if raw["seq"] != seq or raw["prev"] != prev:
            return False
        prev = digest(line)
    return True


def test_a_current_log_passes_through_unchanged() -> None:
    lines = _log()
    assert upcast_log(lines) == (lines, SCHEMA_VERSION)


def test_a_header_without_a_version_means_version_1() -> None:
    lines = _log(LogHeader())
    assert b'"schema_version"' not in lines[0]  # defaults are not written
    assert log_version(lines[0]) == IMPLICIT_VERSION == 1
    raw = decode(lines[0])
    del raw["data"]["header"]
    assert log_version(encode(raw)) == 1


def test_downcast_writes_schema_0_rechained() -> None:
    lines = _log()
    old = downcast_to_v0(lines)
    assert _chained(old)
    assert old[0] != lines[0]
    raws = [decode(line) for line in old]
    assert raws[0]["data"]["header"] == {"flags": {"engine": 1}, "schema_version": 0}
    called, completed = raws[2]["data"], raws[4]["data"]
    assert called["cost"] == 0.001257
    assert "cost_usd" not in called
    assert called["response"]["value"]["cost_usd"] == 0.25  # payloads are not touched
    assert completed["result"] == {"type": "inline", "value": {"answer": "hi"}}
    assert "output" not in completed
    assert log_version(old[0]) == 0


@pytest.mark.parametrize("header", [LogHeader(), FLAGGED])
def test_downcast_then_upcast_is_the_original_bytes(header: LogHeader) -> None:
    lines = _log(header)
    assert upcast_log(downcast_to_v0(lines)) == (lines, 0)


def test_lifted_lines_decode_as_current_events() -> None:
    lifted, _ = upcast_log(downcast_to_v0(_log()))
    events = [decode_event(line, seq=i) for i, line in enumerate(lifted)]
    assert isinstance(events[2].data, ModelCalled)
    assert events[2].data.cost_usd == 0.001257
    assert isinstance(events[4].data, NodeCompleted)


def test_upcasters_do_not_mutate_their_input() -> None:
    raw = {"kind": "node.completed", "data": {"result": {"type": "inline", "value": 1}}}
    lifted = UPCASTERS[0](raw)
    assert raw == {"kind": "node.completed", "data": {"result": {"type": "inline", "value": 1}}}
    assert lifted["data"] == {"output": {"type": "inline", "value": 1}}


def test_every_version_up_to_the_current_one_has_an_upcaster() -> None:
    assert set(UPCASTERS) == set(range(min(UPCASTERS), SCHEMA_VERSION))


def test_tripwire_a_new_schema_version_is_written_explicitly() -> None:
    # A header leaves out fields equal to their default, and a log without a version
    # reads as IMPLICIT_VERSION. So once SCHEMA_VERSION moves past it, the default of
    # LogHeader.schema_version must stay IMPLICIT_VERSION (or the field be always
    # written), else new logs would silently read as the old version.
    written = b'"schema_version"' in encode(LogHeader(schema_version=SCHEMA_VERSION))
    assert SCHEMA_VERSION == IMPLICIT_VERSION or written


def test_a_future_version_is_refused_clearly() -> None:
    raw = decode(_log()[0])
    raw["data"]["header"]["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(UnsupportedSchemaVersion) as exc:
        upcast_log([encode(raw)], run_id="r1")
    assert exc.value.version == SCHEMA_VERSION + 1
    assert str(exc.value) == (
        f"log of run 'r1' is corrupt at seq 0: event schema version {SCHEMA_VERSION + 1}: "
        f"written by a newer Foldline (this Foldline reads event schema 0..{SCHEMA_VERSION})"
    )


@pytest.mark.parametrize("version", [-1, "1", True, None])
def test_a_version_that_is_not_readable_is_refused(version: object) -> None:
    raw = decode(_log()[0])
    raw["data"]["header"]["schema_version"] = version
    with pytest.raises(UnsupportedSchemaVersion, match="this Foldline reads event schema 0"):
        upcast_log([encode(raw)])


def test_the_old_chain_is_checked_before_lifting() -> None:
    old = downcast_to_v0(_log())
    raw = decode(old[2])
    raw["data"]["cost"] = 1.0  # edited after the fact: the next link breaks
    old[2] = encode(raw)
    with pytest.raises(ChainBroken, match=r"run 'r1' is corrupt at seq 3: prev is "):
        upcast_log(old, run_id="r1")


def test_a_line_out_of_order_is_refused() -> None:
    lines = _log()
    with pytest.raises(ChainBroken, match="at seq 1: expected seq 1, found seq 2"):
        upcast_log([lines[0], lines[2]])


def test_a_line_that_is_not_json_is_refused() -> None:
    lines = _log()
    with pytest.raises(LogCorrupt, match=r"at seq 1: not a valid event"):
        upcast_log([lines[0], b"{nope"])


def test_a_log_must_begin_with_run_started() -> None:
    lines = _log()[1:]
    raw = decode(lines[0])
    raw["seq"], raw["prev"] = 0, None
    with pytest.raises(LogCorrupt, match=r"a log begins with run\.started, not 'node\.started'"):
        upcast_log([encode(raw)])


def test_a_lifted_event_that_does_not_fit_is_named() -> None:
    old = downcast_to_v0(_log())
    raw = decode(old[1])
    raw["data"]["bogus"] = 1
    old[1] = encode(raw)
    for seq in range(2, len(old)):  # re-chain by hand, as a writer of schema 0 would have
        raw = decode(old[seq])
        raw["prev"] = digest(old[seq - 1])
        old[seq] = encode(raw)
    with pytest.raises(LogCorrupt, match=r"at seq 1: bad 'node.started' data"):
        upcast_log(old)


def test_an_empty_log_is_empty() -> None:
    assert upcast_log([]) == ([], SCHEMA_VERSION)
    assert downcast_to_v0([]) == []
