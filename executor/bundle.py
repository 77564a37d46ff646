"""Run bundles: a recorded run as a directory of plain files, and back.

A bundle is the ``golden/<case>/`` layout (ARCHITECTURE.md, "Replay and the golden
corpus")::

    graph.json      the run's KIR graph, canonical form, sorted keys, indented
    events.jsonl    each event's canonical bytes, one a line, exactly as stored
    blobs/<digest>  every blob an event refers to, named by its BLAKE2b digest
    case.toml       a short description: flat keys, given by whoever exported it

>>> # export_run(store, "run-1", "golden/refund", case={"description": "one refund"})
>>> # run_id = import_run(other_store, "golden/refund")

:func:`read_bundle` trusts nothing in the directory. The log is first lifted to the
current event schema (:func:`substrate.upcast.upcast_log`, which checks the old hash
chain), then every line must decode to an event whose canonical bytes are the line
itself, the chain must hold, every referenced blob must be present and hash to its
name, and the graph must compile to the ``graph_hash`` that ``run.started``
records. Every error is a :class:`BundleError` naming the file, and the line for
``events.jsonl`` (``.../events.jsonl line 7: ...``; line ``n`` holds seq ``n - 1``).
"""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from executor.errors import ExecutorError, RunNotFound
from kir.compile import compile_graph
from kir.errors import KirError
from kir.schema import parse_graph
from substrate.codec import decode, digest, encode
from substrate.errors import BlobMissing, ConcurrentAppend, DecodeError, LogCorrupt
from substrate.events import (
    BlobRef,
    Event,
    Inline,
    RunStarted,
    decode_event,
    event_bytes,
    verify_chain,
)
from substrate.stores.base import EventStore
from substrate.upcast import upcast_log

__all__ = ["BundleError", "Bundle", "export_run", "read_bundle", "import_run"]

GRAPH: Final = "graph.json"
EVENTS: Final = "events.jsonl"
BLOBS: Final = "blobs"
CASE: Final = "case.toml"

CaseValue = str | int | bool


class BundleError(ExecutorError):
    """A bundle cannot be written, read or imported; the message names the file and line."""


@dataclass(frozen=True)
class Bundle:
    """A bundle, read and verified, its log lifted to the current event schema."""

    #: The KIR graph as plain JSON values (from ``graph.json``).
    graph: dict[str, Any]
    events: list[Event]
    #: The events' canonical bytes (after lifting, if the bundle was older).
    bodies: list[bytes]
    #: digest -> bytes, for every blob an event refers to.
    blobs: dict[str, bytes]
    case: dict[str, Any]
    #: The event schema version the bundle was written under (before lifting).
    schema_version: int


# -- blobs referenced by events ---------------------------------------------------


def _refs(value: Any, out: dict[str, BlobRef]) -> None:
    # Payloads sit in struct fields, possibly inside lists or dicts (future fields);
    # an Inline's value is user data and can never hold a reference.
    if isinstance(value, BlobRef):
        out.setdefault(value.digest, value)
    elif isinstance(value, Inline):
        return
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _refs(getattr(value, name), out)
    elif isinstance(value, list | tuple):
        for item in value:
            _refs(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            _refs(item, out)


def _blob_refs(events: list[Event]) -> dict[str, tuple[int, BlobRef]]:
    """Every blob the events refer to: digest -> (seq of the first reference, ref)."""
    found: dict[str, tuple[int, BlobRef]] = {}
    for ev in events:
        refs: dict[str, BlobRef] = {}
        _refs(ev.data, refs)
        for key, ref in refs.items():
            found.setdefault(key, (ev.seq, ref))
    return found


# -- case.toml --------------------------------------------------------------------

_DIGEST: Final = re.compile(r"[0-9a-f]{64}")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:  # TOML forbids raw control characters
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml(case: Mapping[str, CaseValue]) -> str:
    # The values are flat, so this is the whole of TOML we need (tomllib reads it back).
    lines = []
    for key in sorted(case):
        value = case[key]
        if not isinstance(key, str) or not key:
            raise TypeError(f"case keys are non-empty strings, not {key!r}")
        name = key if _BARE_KEY.fullmatch(key) else _toml_string(key)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        elif isinstance(value, str):
            text = _toml_string(value)
        else:
            raise TypeError(
                f"case value {key!r} must be a str, int or bool, not {type(value).__name__}"
            )
        lines.append(f"{name} = {text}\n")
    return "".join(lines)


# -- export -----------------------------------------------------------------------


def _prepare(directory: Path, overwrite: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise BundleError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        if not overwrite:
            raise BundleError(f"{directory}: not empty (pass overwrite=True to replace a bundle)")
        # Only the bundle's own files go; anything else kept beside them (a README) stays.
        for name in (GRAPH, EVENTS, CASE):
            (directory / name).unlink(missing_ok=True)
        if (directory / BLOBS).is_dir():
            shutil.rmtree(directory / BLOBS)
    (directory / BLOBS).mkdir(parents=True, exist_ok=True)


def export_run(
    store: EventStore,
    run_id: str,
    directory: str | Path,
    *,
    case: Mapping[str, CaseValue] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write run ``run_id`` of ``store`` as a bundle in ``directory``; return its path.

    ``case.toml`` holds ``run_id`` (so an import keeps the id) and the ``case`` keys,
    which may override it.

    Raises:
        RunNotFound: the store has no such run.
        BundleError: ``directory`` is not empty (and not ``overwrite``), or the run
            refers to a graph or blob the store does not hold.
        TypeError: a ``case`` value is not a str, int or bool.
    """
    events = store.read(run_id)
    if not events:
        raise RunNotFound(run_id)
    first = events[0].data
    if not isinstance(first, RunStarted):
        raise BundleError(f"run {run_id!r} does not begin with run.started")
    graph_body = store.get_graph(first.graph_hash)
    if digest(graph_body) != first.graph_hash:
        raise BundleError(f"run {run_id!r}: the stored graph does not hash to its recorded hash")
    blobs: dict[str, bytes] = {}
    for key, (seq, _) in sorted(_blob_refs(events).items()):
        if not _DIGEST.fullmatch(key):  # it becomes a file name: never a path
            raise BundleError(f"run {run_id!r} seq {seq}: blob reference {key!r} is not a digest")
        try:
            blobs[key] = store.get_blob(key)
        except BlobMissing:
            raise BundleError(
                f"run {run_id!r} seq {seq} refers to blob {key}, which the store does not hold"
            ) from None
    case_text = _toml({"run_id": run_id, **(case or {})})

    path = Path(directory)
    _prepare(path, overwrite)
    pretty = msgspec.json.format(encode(decode(graph_body)), indent=2)
    (path / GRAPH).write_bytes(pretty + b"\n")
    (path / EVENTS).write_bytes(b"".join(event_bytes(ev) + b"\n" for ev in events))
    for key, body in blobs.items():
        (path / BLOBS / key).write_bytes(body)
    (path / CASE).write_text(case_text, encoding="utf-8")
    return path


# -- read -------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror})") from None


def _lines(path: Path) -> list[bytes]:
    data = _read(path)
    if not data:
        raise BundleError(f"{path}: no events")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    # Canonical JSON never ends in a carriage return: a checkout that turned the
    # newlines into CRLF is read as it was written.
    lines = [line.removesuffix(b"\r") for line in lines]
    for i, line in enumerate(lines):
        if not line:
            raise BundleError(f"{path} line {i + 1}: empty line")
    return lines


def _events(path: Path) -> tuple[list[Event], list[bytes], int]:
    raw = _lines(path)
    try:
        bodies, version = upcast_log(raw, run_id=path.parent.name)
        events = []
        for seq, body in enumerate(bodies):
            ev = decode_event(body, run_id=path.parent.name, seq=seq)
            if encode(ev) != body:
                raise BundleError(
                    f"{path} line {seq + 1}: not in canonical form "
                    "(re-encoding the event changes its bytes)"
                )
            events.append(ev)
        verify_chain(events, run_id=path.parent.name)
    except LogCorrupt as exc:
        raise BundleError(f"{path} line {max(exc.seq, 0) + 1}: {exc.reason}") from None
    return events, bodies, version


def _graph(path: Path, graph_hash: str, events_path: Path) -> dict[str, Any]:
    try:
        data = decode(_read(path))
    except DecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: not a KIR graph (expected a JSON object)")
    try:
        compiled = compile_graph(parse_graph(data))
    except KirError as exc:
        raise BundleError(f"{path}: not a valid KIR graph: {exc}") from None
    if compiled.graph_hash != graph_hash:
        raise BundleError(
            f"{path}: the graph hashes to {compiled.graph_hash}, but run.started "
            f"({events_path.name} line 1) records {graph_hash}"
        )
    return data


def _blobs(directory: Path, events: list[Event], events_path: Path) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    for key, (seq, ref) in sorted(_blob_refs(events).items()):
        if not _DIGEST.fullmatch(key):  # it becomes a file name: never a path
            raise BundleError(f"{events_path} line {seq + 1}: blob {key!r} is not a digest")
        path = directory / BLOBS / key
        where = f"referred to by {events_path.name} line {seq + 1}"
        if not path.is_file():
            raise BundleError(f"{path}: missing ({where})")
        body = _read(path)
        if digest(body) != key:
            raise BundleError(f"{path}: corrupt, its bytes hash to {digest(body)}")
        if len(body) != ref.size:
            raise BundleError(
                f"{path}: {len(body)} bytes, but {events_path.name} line {seq + 1} says {ref.size}"
            )
        blobs[key] = body
    return blobs


def _case(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(_read(path).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid TOML ({exc})") from None


def read_bundle(directory: str | Path) -> Bundle:
    """Read and verify the bundle in ``directory``, lifting an old log to the current schema.

    Raises:
        BundleError: a file is missing or unreadable; a line of ``events.jsonl`` is not
            a canonical event, breaks the hash chain, or comes from an unknown event
            schema; a referenced blob is missing or corrupt; the graph is invalid or
            does not hash to what ``run.started`` records; ``case.toml`` is not TOML.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such bundle directory")
    events_path = directory / EVENTS
    events, bodies, version = _events(events_path)
    started = events[0].data
    if not isinstance(started, RunStarted):  # upcast_log checks it; kept for the type
        raise BundleError(f"{events_path} line 1: a log begins with run.started")
    graph = _graph(directory / GRAPH, started.graph_hash, events_path)
    blobs = _blobs(directory, events, events_path)
    case = _case(directory / CASE)
    return Bundle(graph, events, bodies, blobs, case, version)


# -- import -----------------------------------------------------------------------


def import_run(store: EventStore, directory: str | Path, *, run_id: str | None = None) -> str:
    """Put the bundle in ``directory`` into ``store`` as a run; return its id.

    The id is ``run_id``, else ``case.toml``'s ``run_id``, else the directory's name.
    The graph and the blobs are stored, and the events appended in one transaction
    (with the blobs), so the run is all there or not there at all.

    Raises:
        BundleError: the bundle does not verify (see :func:`read_bundle`), or the
            store already holds a run with that id.
    """
    directory = Path(directory)
    bundle = read_bundle(directory)
    if run_id is None:
        named = bundle.case.get("run_id")
        if named is not None and not isinstance(named, str):
            raise BundleError(f"{directory / CASE}: run_id must be a string, not {named!r}")
        run_id = named or directory.resolve().name
    exists = BundleError(
        f"run {run_id!r} already exists in the store (import it under another run_id=)"
    )
    if store.head(run_id).next_seq:
        raise exists
    compiled = compile_graph(parse_graph(bundle.graph))
    store.put_graph(compiled.graph_hash, compiled.canonical)
    try:
        store.append(run_id, 0, bundle.events, bodies=bundle.bodies, blobs=bundle.blobs)
    except ConcurrentAppend:
        raise exists from None
    return run_id
