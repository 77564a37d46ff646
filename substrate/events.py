"""The event log's vocabulary: the envelope, every event kind, and the hash chain.

A run is an append-only list of :class:`Event`. Each event is an envelope
(``seq``, ``at``, ``kind``, ``node``, ``data``, ``prev``) around a typed ``data``
struct, one struct per kind. Kinds fall into two families, and this split is the
heart of replay:

* **inputs** (:data:`INPUT_KINDS`) are facts from outside the engine — a model's
  answer, a tool's result, a clock reading, a human's decision, a signal, a cancel
  request, the fact that a new process took over. They are recorded live and
  served back on replay.
* **derivations** (:data:`DERIVATION_KINDS`) are what the engine decides from the
  graph and the inputs. Replay regenerates them and compares them byte for byte.

``prev`` is the hash of the previous event's canonical bytes (``None`` for
seq 0), so any edit of a stored event breaks the chain at the next one; the
stores also keep each event's own hash so that the last event is covered too.

Schema evolution follows msgspec's rules: a new field gets a default, a new kind
is a new struct. :data:`SCHEMA_VERSION` is recorded in every run's
:class:`LogHeader` (carried by ``run.started``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Final, Literal, Union

import msgspec

from substrate.codec import ENCODER_NAME, ENCODER_VERSION, HASH_NAME, digest, encode
from substrate.errors import ChainBroken, LogCorrupt, UnknownEventKind

__all__ = [
    "SCHEMA_VERSION",
    "LogHeader",
    "Inline",
    "BlobRef",
    "Payload",
    "Usage",
    "ErrorInfo",
    "EventData",
    "RunStarted",
    "RunResumed",
    "RunCancelRequested",
    "RunCompleted",
    "RunFailed",
    "RunWaiting",
    "RunCancelled",
    "NodeStarted",
    "NodeCompleted",
    "NodeFailed",
    "NodeSkipped",
    "ModelRequested",
    "ModelCalled",
    "ToolRequested",
    "ToolReturned",
    "ClockRead",
    "GateOpened",
    "GateDecided",
    "SignalReceived",
    "BudgetExceeded",
    "BudgetRaised",
    "Event",
    "Head",
    "EVENT_TYPES",
    "INPUT_KINDS",
    "DERIVATION_KINDS",
    "event_bytes",
    "decode_event",
    "decode_events",
    "decode_event_array",
    "seal",
    "verify_chain",
]

#: Version of the event schema written by this code. Bump it when an event's
#: meaning changes (not for a new defaulted field); old logs keep their version
#: in their header and are lifted by upcasters.
SCHEMA_VERSION: Final = 1


class _Rec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Base of every recorded struct: immutable, strict on decode.

    Fields equal to their default are not written. Besides keeping logs small, this is
    what lets a new defaulted field be added without changing a single byte of the
    events already recorded: old logs re-encode, hash and replay exactly as before.

    Not tracked by the cycle collector (``gc=False``, inherited): a recorded struct holds
    JSON values, which are trees, so it is never part of a reference cycle, and a long
    log is hundreds of thousands of them that a collection would otherwise walk.
    """


class LogHeader(_Rec, frozen=True):
    """What a run's log says about the code that wrote it (carried by ``run.started``)."""

    #: Absent means 1: the default is pinned to the first version (not to
    #: SCHEMA_VERSION) so that logs keep their meaning when SCHEMA_VERSION moves on.
    schema_version: int = 1
    encoder: str = ENCODER_NAME
    encoder_version: str = ENCODER_VERSION
    hash: str = HASH_NAME
    #: Executor behaviour flags in force when the run was recorded; replay runs an
    #: old log with the behaviour it was recorded under.
    flags: dict[str, Any] = {}


# -- payloads ------------------------------------------------------------------


class Inline(_Rec, frozen=True, tag="inline"):
    """A payload small enough to live inside the event."""

    value: Any


class BlobRef(_Rec, frozen=True, tag="blob"):
    """A payload stored once in the blob store, referred to by its digest."""

    digest: str
    size: int


#: A value carried by an event: inline, or by reference into the blob store
#: (see :mod:`substrate.blobs`). Tagged, so a user value can never be mistaken
#: for a reference.
Payload = Inline | BlobRef


class Usage(_Rec, frozen=True):
    """Tokens a model call consumed, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0


class ErrorInfo(_Rec, frozen=True):
    """An exception, recorded: its type name and message (no traceback: not portable)."""

    type: str
    message: str


# -- event kinds ---------------------------------------------------------------


class EventData(_Rec, frozen=True):
    """Base of every event's ``data``. Subclasses set ``KIND`` and ``INPUT``."""

    KIND: ClassVar[str] = ""
    #: True for inputs (facts from outside), False for derivations.
    INPUT: ClassVar[bool] = False


class RunStarted(EventData, frozen=True):
    """The run begins: which graph, with which inputs, under which seed and header."""

    KIND: ClassVar[str] = "run.started"
    graph_hash: str
    inputs: Payload
    #: Hex seed from which every id and random draw of the run is derived.
    seed: str
    header: LogHeader = LogHeader()
    options: dict[str, Any] = {}


class RunResumed(EventData, frozen=True):
    """A new process took over the run (the previous one stopped or crashed)."""

    KIND: ClassVar[str] = "run.resumed"
    INPUT: ClassVar[bool] = True
    worker: str = ""
    reason: str = ""


class RunCancelRequested(EventData, frozen=True):
    """Somebody asked for the run to stop."""

    KIND: ClassVar[str] = "run.cancel_requested"
    INPUT: ClassVar[bool] = True
    by: str = ""
    reason: str = ""


class RunCompleted(EventData, frozen=True):
    """The run finished; its output."""

    KIND: ClassVar[str] = "run.completed"
    output: Payload


class RunFailed(EventData, frozen=True):
    """The run failed for good."""

    KIND: ClassVar[str] = "run.failed"
    error: ErrorInfo
    node: str | None = None


class RunWaiting(EventData, frozen=True):
    """Nothing can run until an outside input arrives; no process needs to stay alive."""

    KIND: ClassVar[str] = "run.waiting"
    #: What the run waits on: gate ids, ``timer:<node>``, ``signal:<name>``, ``budget``.
    on: list[str]
    #: Earliest time (µs) a timer the run waits on fires, if any.
    until: int | None = None


class RunCancelled(EventData, frozen=True):
    """The run stopped because cancellation was requested."""

    KIND: ClassVar[str] = "run.cancelled"
    reason: str = ""


class NodeStarted(EventData, frozen=True):
    """A node instance began an attempt."""

    KIND: ClassVar[str] = "node.started"
    attempt: int = 1
    #: For a ``map`` node: how many items it fans out over.
    items: int | None = None


class NodeCompleted(EventData, frozen=True):
    """A node instance produced its output."""

    KIND: ClassVar[str] = "node.completed"
    output: Payload
    #: For nodes that choose outgoing edges (router, gate): the labels taken.
    route: list[str] | None = None


class NodeFailed(EventData, frozen=True):
    """A node attempt raised; ``retry_at`` says when the next attempt may start."""

    KIND: ClassVar[str] = "node.failed"
    error: ErrorInfo
    attempt: int = 1
    retry_at: int | None = None


class NodeSkipped(EventData, frozen=True):
    """Every incoming edge of the node instance was untaken."""

    KIND: ClassVar[str] = "node.skipped"
    reason: str = ""


class ModelRequested(EventData, frozen=True):
    """The engine is about to make model call ``call`` (committed before the call).

    It reserves the call's worst case against the budget, so budget decisions are a
    function of the log alone; a ``model.requested`` with no ``model.called`` after a
    crash is a call that may have been billed.
    """

    KIND: ClassVar[str] = "model.requested"
    call: int
    model: str
    request_hash: str
    #: Worst case of the call: prompt tokens plus ``max_tokens``, and its price.
    max_tokens: int = 0
    max_cost_usd: float = 0.0


class ModelCalled(EventData, frozen=True):
    """A model answered call ``call`` of the node instance (recorded as billed)."""

    KIND: ClassVar[str] = "model.called"
    INPUT: ClassVar[bool] = True
    call: int
    model: str
    request_hash: str
    request: Payload
    response: Payload
    usage: Usage = Usage()
    #: What the provider billed, in USD; never recomputed from a price table.
    cost_usd: float = 0.0


class ToolRequested(EventData, frozen=True):
    """The engine is about to run a tool (committed before any side effect)."""

    KIND: ClassVar[str] = "tool.requested"
    call: int
    tool: str
    args: Payload
    args_hash: str
    idempotency_key: str


class ToolReturned(EventData, frozen=True):
    """A tool call ended: its result, or its error."""

    KIND: ClassVar[str] = "tool.returned"
    INPUT: ClassVar[bool] = True
    call: int
    result: Payload
    error: ErrorInfo | None = None


class ClockRead(EventData, frozen=True):
    """A reading of the clock port (µs since the epoch) by call ``call``."""

    KIND: ClassVar[str] = "clock.read"
    INPUT: ClassVar[bool] = True
    call: int
    value: int


class GateOpened(EventData, frozen=True):
    """The run needs a human: an approval, an answer, or an unknown tool outcome."""

    KIND: ClassVar[str] = "gate.opened"
    gate: str
    reason: Literal["approval", "question", "unknown-outcome", "budget"] = "approval"
    question: str = ""
    #: For tool approvals: the exact tool and args the decision is bound to.
    tool: str | None = None
    args_hash: str | None = None
    #: The args themselves, for the human to review.
    args: Payload | None = None
    answer_schema: dict[str, Any] | None = None


class GateDecided(EventData, frozen=True):
    """A human decided a gate."""

    KIND: ClassVar[str] = "gate.decided"
    INPUT: ClassVar[bool] = True
    gate: str
    decision: Literal["approve", "reject", "answer"]
    by: str
    note: str = ""
    answer: Any = None
    #: For tool approvals, the args hash the human saw and approved.
    args_hash: str | None = None


class SignalReceived(EventData, frozen=True):
    """A named external signal arrived."""

    KIND: ClassVar[str] = "signal.received"
    INPUT: ClassVar[bool] = True
    name: str
    payload: Payload = Inline(None)


class BudgetExceeded(EventData, frozen=True):
    """A call was refused because it could have exceeded a cap."""

    KIND: ClassVar[str] = "budget.exceeded"
    limit: Literal["usd", "tokens", "calls"]
    cap: float
    spent: float
    #: Worst case of the refused call (from max_tokens and the known price).
    requested: float
    action: Literal["wait", "fail"] = "wait"
    #: The refused call's whole worst case (tokens and USD), as the model port
    #: estimated it: an input, so replay serves it rather than asking today's prices.
    max_tokens: int = 0
    max_cost_usd: float = 0.0


class BudgetRaised(EventData, frozen=True):
    """Somebody raised (or set) the run's caps; ``None`` leaves a cap as it was."""

    KIND: ClassVar[str] = "budget.raised"
    INPUT: ClassVar[bool] = True
    usd: float | None = None
    tokens: int | None = None
    calls: int | None = None
    by: str = ""


_ALL_DATA: Final[tuple[type[EventData], ...]] = (
    RunStarted,
    RunResumed,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    RunWaiting,
    RunCancelled,
    NodeStarted,
    NodeCompleted,
    NodeFailed,
    NodeSkipped,
    ModelRequested,
    ModelCalled,
    ToolRequested,
    ToolReturned,
    ClockRead,
    GateOpened,
    GateDecided,
    SignalReceived,
    BudgetExceeded,
    BudgetRaised,
)

#: kind tag -> data struct.
EVENT_TYPES: Final[dict[str, type[EventData]]] = {t.KIND: t for t in _ALL_DATA}
INPUT_KINDS: Final = frozenset(k for k, t in EVENT_TYPES.items() if t.INPUT)
DERIVATION_KINDS: Final = frozenset(k for k, t in EVENT_TYPES.items() if not t.INPUT)


# -- the envelope --------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, gc=False):
    """One entry of a run's log.

    Build events with :func:`seal`, which fills ``seq`` and ``prev``; ``kind`` must
    be ``data.KIND`` (checked on decode). Not tracked by the cycle collector, as the
    recorded structs it carries are not (see ``_Rec``).
    """

    seq: int
    #: Microseconds since the epoch, from the clock port (an input).
    at: int
    kind: str
    #: Node instance key, or None for run-level events.
    node: str | None
    data: EventData
    #: Hash of the previous event's canonical bytes; None for seq 0.
    prev: str | None

    @property
    def is_input(self) -> bool:
        return self.data.INPUT


class _RawEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seq: int
    at: int
    kind: str
    node: str | None
    data: msgspec.Raw
    prev: str | None


class Head(msgspec.Struct, frozen=True):
    """Where a run's log ends: the next seq to write and the hash of the last event."""

    next_seq: int = 0
    hash: str | None = None


def event_bytes(event: Event) -> bytes:
    """The canonical bytes of an event: what is stored, hashed and compared."""
    return encode(event)


_RAW_DECODER: Final = msgspec.json.Decoder(_RawEvent)
_DATA_DECODERS: Final = {kind: msgspec.json.Decoder(t) for kind, t in EVENT_TYPES.items()}


def decode_event(body: bytes | memoryview, *, run_id: str = "?", seq: int | None = None) -> Event:
    """Decode one stored event; errors name the run and the seq.

    Raises:
        UnknownEventKind: the kind is not one this version knows.
        LogCorrupt: the bytes are not a well-formed event.
    """
    try:
        raw = _RAW_DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise LogCorrupt(run_id, -1 if seq is None else seq, f"not a valid event ({exc})") from None
    if seq is not None and raw.seq != seq:
        raise LogCorrupt(run_id, seq, f"event claims seq {raw.seq}")
    decoder = _DATA_DECODERS.get(raw.kind)
    if decoder is None:
        raise UnknownEventKind(run_id, raw.seq, raw.kind)
    try:
        data = decoder.decode(raw.data)
    except msgspec.DecodeError as exc:
        raise LogCorrupt(run_id, raw.seq, f"bad {raw.kind!r} data ({exc})") from None
    return Event(raw.seq, raw.at, raw.kind, raw.node, data, raw.prev)


def _envelope(kind: str, data_type: type[EventData]) -> type[msgspec.Struct]:
    """The envelope of one kind, as a struct tagged by ``kind`` (for decoding only)."""
    return msgspec.defstruct(
        f"_{data_type.__name__}Envelope",
        [
            ("seq", int),
            ("at", int),
            ("node", str | None),
            ("data", data_type),
            ("prev", str | None),
        ],
        tag_field="kind",
        tag=kind,
        frozen=True,
        forbid_unknown_fields=True,
        gc=False,
        module=__name__,
    )


# One decoder for every kind: a union of envelopes tagged by their `kind` field, so one
# call parses the envelope and its typed data (decode_event makes two, and a Raw).
_ENVELOPES: Final[Any] = Union[tuple(_envelope(k, t) for k, t in EVENT_TYPES.items())]  # noqa: UP007 (built at runtime)
_ENVELOPE_DECODER: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_ENVELOPES)


def decode_events(
    bodies: Sequence[bytes | memoryview], *, run_id: str = "?", start: int = 0
) -> list[Event]:
    """Decode the stored events ``start, start + 1, ...``: :func:`decode_event` in bulk.

    Equivalent to ``[decode_event(b, run_id=run_id, seq=start + i) for i, b in ...]``,
    errors included: when any body does not decode or claims another seq, the bodies are
    decoded again one by one, which raises the error naming the first bad one.

    Raises:
        UnknownEventKind: a kind this version does not know.
        LogCorrupt: bytes that are not a well-formed event, or an event claiming another seq.
    """
    decode, event = _ENVELOPE_DECODER.decode, Event
    events: list[Event] = []
    append = events.append
    seq = start
    try:
        for env in map(decode, bodies):
            data = env.data
            if env.seq != seq:
                break
            append(event(seq, env.at, data.KIND, env.node, data, env.prev))
            seq += 1
        else:
            return events
    except msgspec.DecodeError:
        pass
    return [decode_event(b, run_id=run_id, seq=start + i) for i, b in enumerate(bodies)]


_ARRAY_DECODER: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(list[_ENVELOPES])


def decode_event_array(data: bytes, start: int, count: int) -> list[Event] | None:
    """Decode ``count`` stored events ``start, start + 1, ...`` from one JSON array of
    their canonical bytes (``b"[" + b",".join(bodies) + b"]"``), in one call.

    None when the array does not decode, holds another number of events, or an event
    claims another seq: the caller then decodes the bodies one by one
    (:func:`decode_events`), which names the first bad one.
    """
    try:
        envs = _ARRAY_DECODER.decode(data)
    except (msgspec.DecodeError, ValueError):  # ValueError: damaged bytes that are not UTF-8
        return None
    if len(envs) != count:
        return None
    event = Event
    events = [
        event(seq, env.at, env.data.KIND, env.node, env.data, env.prev)
        for seq, env in zip(range(start, start + count), envs, strict=True)
        if env.seq == seq
    ]
    return events if len(events) == count else None  # one claimed another seq


def seal(
    head: Head, drafts: Iterable[tuple[int, str | None, EventData]]
) -> tuple[list[Event], list[bytes], Head]:
    """Chain ``(at, node, data)`` drafts onto ``head``.

    Returns the events, their canonical bytes (so the store need not encode them
    again) and the new head.
    """
    events: list[Event] = []
    bodies: list[bytes] = []
    seq, prev = head.next_seq, head.hash
    for at, node, data in drafts:
        ev = Event(seq, at, data.KIND, node, data, prev)
        body = encode(ev)
        events.append(ev)
        bodies.append(body)
        prev = digest(body)
        seq += 1
    return events, bodies, Head(seq, prev)


def verify_chain(events: Sequence[Event], *, run_id: str = "?", start: Head = Head()) -> Head:
    """Check seqs count up from ``start`` and each ``prev`` is its predecessor's hash.

    Returns the head after the last event.

    Raises:
        ChainBroken: naming the first seq whose ``prev`` or ``seq`` is wrong.
    """
    seq, prev = start.next_seq, start.hash
    for ev in events:
        if ev.seq != seq:
            raise ChainBroken(run_id, seq, f"expected seq {seq}, found seq {ev.seq}")
        if ev.prev != prev:
            raise ChainBroken(
                run_id, seq, f"prev is {ev.prev!r} but the hash of the event before is {prev!r}"
            )
        if ev.kind != ev.data.KIND:
            raise ChainBroken(run_id, seq, f"kind {ev.kind!r} does not match its data")
        prev = digest(encode(ev))
        seq += 1
    return Head(seq, prev)
