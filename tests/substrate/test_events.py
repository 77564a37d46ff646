from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from substrate.codec import encode
from substrate.errors import ChainBroken, LogCorrupt, UnknownEventKind
from substrate.events import (
    DERIVATION_KINDS,
    EVENT_TYPES,
    INPUT_KINDS,
    Event,
    EventData,
    Head,
    Inline,
    LogHeader,
    NodeCompleted,
    NodeStarted,
    RunStarted,
    decode_event,
    seal,
    verify_chain,
)
from tests.substrate.strategies import for_type

ARCHITECTURE = Path(__file__).resolve().parents[3] / "shared" / "ARCHITECTURE.md"

INPUTS = {
    "model.called", "tool.returned", "clock.read", "gate.decided", "signal.received",
    "run.cancel_requested", "run.resumed",
}  # fmt: skip
DERIVATIONS = {
    "run.started", "node.started", "node.completed", "node.failed", "node.skipped",
    "tool.requested", "gate.opened", "budget.exceeded", "run.completed", "run.failed",
    "run.waiting",
}  # fmt: skip


def test_every_kind_of_the_architecture_exists_in_its_family() -> None:
    assert INPUTS <= INPUT_KINDS
    assert DERIVATIONS <= DERIVATION_KINDS
    assert not INPUT_KINDS & DERIVATION_KINDS
    # Beyond the contract's list: the end of a cancelled run, the reservation made before
    # a model call, and a raised budget (see docs/SUBSTRATE.md).
    assert set(EVENT_TYPES) - INPUTS - DERIVATIONS == {
        "run.cancelled",
        "model.requested",
        "budget.raised",
    }
    assert "budget.raised" in INPUT_KINDS
    assert "model.requested" in DERIVATION_KINDS


@pytest.mark.skipif(not ARCHITECTURE.exists(), reason="shared/ARCHITECTURE.md not beside the repo")
def test_kinds_named_in_architecture_md_are_all_known() -> None:
    text = ARCHITECTURE.read_text()
    section = text.split("## Events", 1)[1].split("## Executor", 1)[0]
    named = set(re.findall(r"`([a-z]+\.[a-z_]+)`", section))
    assert named, "no event kinds found in ARCHITECTURE.md"
    assert named <= set(EVENT_TYPES), named - set(EVENT_TYPES)


def events_of(kind: str) -> st.SearchStrategy[Event]:
    data_type = EVENT_TYPES[kind]
    return st.builds(
        Event,
        seq=st.integers(0, 2**40),
        at=st.integers(0, 2**62),
        kind=st.just(kind),
        node=st.none() | st.text(max_size=20),
        data=for_type(data_type),
        prev=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    )


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
@given(data=st.data())
def test_every_event_kind_round_trips(kind: str, data: st.DataObject) -> None:
    event = data.draw(events_of(kind))
    body = encode(event)
    back = decode_event(body)
    assert back == event
    assert type(back.data) is EVENT_TYPES[kind]
    assert encode(back) == body


def test_envelope_layout() -> None:
    (ev,), _, _ = seal(Head(), [(5, "n", NodeStarted(attempt=2))])
    assert encode(ev) == (
        b'{"seq":0,"at":5,"kind":"node.started","node":"n","data":{"attempt":2},"prev":null}'
    )


def test_header_records_encoder_and_schema() -> None:
    header = LogHeader()
    assert header.encoder == "msgspec.json"
    assert header.schema_version == 1
    assert header.hash == "blake2b-256"


def _chain(n: int) -> list[Event]:
    drafts: list[tuple[int, str | None, EventData]] = [(0, None, RunStarted("g", Inline({}), "00"))]
    drafts += [(i, f"n{i}", NodeCompleted(Inline(i))) for i in range(1, n)]
    events, _, _ = seal(Head(), drafts)
    return events


def test_seal_chains_and_verify_accepts() -> None:
    events = _chain(5)
    assert [e.seq for e in events] == [0, 1, 2, 3, 4]
    assert events[0].prev is None
    head = verify_chain(events)
    assert head.next_seq == 5


@pytest.mark.parametrize("broken", [1, 3, 4])
def test_verify_chain_names_the_first_broken_seq(broken: int) -> None:
    import msgspec

    events = _chain(5)
    tampered = msgspec.structs.replace(events[broken - 1], at=999)
    events[broken - 1] = tampered
    with pytest.raises(ChainBroken) as info:
        verify_chain(events, run_id="r1")
    assert info.value.seq == broken
    assert str(info.value).startswith(f"log of run 'r1' is corrupt at seq {broken}: prev is")


def test_verify_chain_names_a_missing_seq() -> None:
    events = _chain(4)
    del events[2]
    with pytest.raises(ChainBroken, match=r"at seq 2: expected seq 2, found seq 3"):
        verify_chain(events, run_id="r1")


def test_unknown_kind_names_the_kind_and_seq() -> None:
    body = b'{"seq":7,"at":1,"kind":"node.exploded","node":"n","data":{},"prev":null}'
    with pytest.raises(UnknownEventKind) as info:
        decode_event(body, run_id="r9", seq=7)
    assert info.value.kind == "node.exploded"
    assert str(info.value) == (
        "log of run 'r9' is corrupt at seq 7: unknown event kind 'node.exploded' "
        "(written by a newer Foldline, or not a Foldline log)"
    )


def test_bad_data_names_the_kind_seq_and_field() -> None:
    body = b'{"seq":3,"at":1,"kind":"node.started","node":"n","data":{"attempt":"x"},"prev":null}'
    with pytest.raises(LogCorrupt, match=r"at seq 3: bad 'node.started' data .*\$\.attempt"):
        decode_event(body, run_id="r", seq=3)


def test_garbage_is_log_corrupt_not_a_msgspec_error() -> None:
    with pytest.raises(LogCorrupt, match="at seq 4: not a valid event"):
        decode_event(b"\x00garbage", run_id="r", seq=4)


def test_a_new_defaulted_field_leaves_old_event_bytes_unchanged() -> None:
    import msgspec

    class V1(msgspec.Struct, frozen=True, omit_defaults=True):
        attempt: int = 1

    class V2(msgspec.Struct, frozen=True, omit_defaults=True):
        attempt: int = 1
        items: int | None = None

    assert encode(V1(3)) == encode(V2(3)) == b'{"attempt":3}'
    # NodeStarted grew `items` this way: a plain start encodes as it always did.
    (ev,), _, _ = seal(Head(), [(5, "n", NodeStarted())])
    assert b'"data":{}' in encode(ev)
