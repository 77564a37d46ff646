"""How runs look in a terminal: numbers, times, the ``ls`` table, the ``show`` timeline.

Everything here formats; nothing reads a store except through the values passed in.
Values from the log go into rich ``Text`` (never markup), so a ``[bold]`` in a
model's answer prints as itself.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Container, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from foldline.view import GateView, RunView, payload_value
from substrate.events import (
    BudgetExceeded,
    BudgetRaised,
    ClockRead,
    Event,
    GateDecided,
    GateOpened,
    ModelCalled,
    ModelRequested,
    NodeCompleted,
    NodeFailed,
    NodeSkipped,
    NodeStarted,
    RunCancelled,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    RunResumed,
    RunStarted,
    RunWaiting,
    SignalReceived,
    ToolRequested,
    ToolReturned,
)
from substrate.stores.base import EventStore

__all__ = [
    "STATUS_STYLE",
    "money",
    "duration",
    "clock_time",
    "date_time",
    "shown_path",
    "compact",
    "command",
    "status_text",
    "ended",
    "runs_table",
    "timeline_table",
    "fit_table",
    "gate_lines",
    "print_outcome",
    "print_next",
    "waiting_lines",
    "print_view_header",
]

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
    "waiting": "yellow",
    "running": "cyan",
}


def money(usd: float) -> str:
    return f"${usd:.6f}"


def duration(us: int | None) -> str:
    """``0.012s``, ``3.4s``, ``2m05s``, ``3h02m``, ``2d04h``."""
    if us is None:
        return "-"
    s = us / 1e6
    if s < 10:
        return f"{s:.3f}s"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def clock_time(at: int) -> str:
    """Local wall-clock time of an event, to the millisecond."""
    return datetime.fromtimestamp(at / 1e6).strftime("%H:%M:%S.%f")[:-3]


def shown_path(path: str) -> str:
    """``path`` relative to the current directory when it is inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def date_time(at: int | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at / 1e6).strftime("%Y-%m-%d %H:%M:%S")


def compact(value: Any, limit: int = 80) -> str:
    """A value as one line of JSON (strings bare), cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def command(*words: str) -> str:
    """A shell command line, each word quoted as needed (``'ops#1'``, ``'m[0]/x#2'``)."""
    return " ".join(shlex.quote(w) for w in words)


def ended(status: str) -> str:
    """``has already completed``, ``has already failed``, ``was cancelled``."""
    return "was cancelled" if status == "cancelled" else f"has already {status}"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- ls ---------------------------------------------------------------------------------


def runs_table(views: Sequence[RunView]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col, justify in (
        ("id", "left"),
        ("graph", "left"),
        ("status", "left"),
        ("started", "left"),
        ("duration", "right"),
        ("cost", "right"),
        ("tokens", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for v in views:
        table.add_row(
            Text(v.run_id),
            Text(v.name),
            status_text(v.status),
            date_time(v.started_at),
            duration(v.duration_us),
            money(v.cost_usd),
            str(v.tokens),
        )
    return table


# -- show -------------------------------------------------------------------------------


def fit_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Text]],
    total_width: int,
    *,
    right: Container[str] = (),
    caps: Mapping[str, int] | None = None,
) -> Table:
    """A table whose columns keep their content's width, except the last one, which
    gets what is left of ``total_width`` and ends in an ellipsis.

    ``caps`` cut a column (with an ellipsis) at a width. Rich would otherwise shrink
    every column of a too-wide table, and drop some entirely.
    """
    caps = caps or {}
    table = Table(box=None, pad_edge=False, header_style="bold")
    used = 0
    for i, name in enumerate(columns[:-1]):
        width = max([len(name)] + [row[i].cell_len for row in rows])
        width = min(width, caps.get(name, width))
        table.add_column(
            name,
            justify="right" if name in right else "left",
            no_wrap=True,
            overflow="ellipsis",
            min_width=width,
            max_width=width,
        )
        used += width + 2
    rest = max(total_width - used, 16)
    table.add_column(columns[-1], no_wrap=True, overflow="ellipsis", max_width=rest)
    for row in rows:
        table.add_row(*row)
    return table


def timeline_table(log: Sequence[Event], store: EventStore, total_width: int = 120) -> Table:
    """One row per event: seq, time, node, event, duration, tokens, cost, detail.

    Every column but ``detail`` keeps its full width (a node key is cut at 32
    characters); ``detail`` gets what is left of ``total_width`` and ends in an ellipsis.
    """
    began: dict[tuple[str, str | None, Any], int] = {}
    rows: list[list[str]] = []
    for ev in log:
        d = ev.data
        took = _duration_of(ev, began)
        tokens = cost = ""
        if isinstance(d, ModelCalled):
            tokens = str(d.usage.input_tokens + d.usage.output_tokens)
            cost = money(d.cost_usd)
        rows.append(
            [
                str(ev.seq),
                clock_time(ev.at),
                ev.node or "",
                ev.kind,
                duration(took) if took is not None else "",
                tokens,
                cost,
                _detail(ev, store),
            ]
        )
    cells = [[Text(c) for c in r] for r in rows]
    for r in cells:
        r[3].stylize(_kind_style(r[3].plain))
    right = {"seq", "duration", "tokens", "cost"}
    columns = ("seq", "time", "node", "event", "duration", "tokens", "cost", "detail")
    return fit_table(columns, cells, total_width, right=right, caps={"node": 32})


def _kind_style(kind: str) -> str:
    if kind in ("run.failed", "node.failed"):
        return "red"
    if kind.startswith("gate.") or kind == "run.waiting":
        return "yellow"
    if kind in ("run.completed", "node.completed"):
        return "green"
    return ""


def _duration_of(ev: Event, began: dict[tuple[str, str | None, Any], int]) -> int | None:
    """Time since the event that this one ends (a node's start, a call's request, ...)."""
    d = ev.data
    start_key: tuple[str, str | None, Any] | None = None
    end_key: tuple[str, str | None, Any] | None = None
    if isinstance(d, RunStarted):
        start_key = ("run", None, None)
    elif isinstance(d, RunCompleted | RunFailed | RunCancelled):
        end_key = ("run", None, None)
    elif isinstance(d, NodeStarted):
        start_key = ("node", ev.node, None)
    elif isinstance(d, NodeCompleted | NodeFailed):
        end_key = ("node", ev.node, None)
    elif isinstance(d, ModelRequested | ToolRequested):
        start_key = ("call", ev.node, d.call)
    elif isinstance(d, ModelCalled | ToolReturned):
        end_key = ("call", ev.node, d.call)
    elif isinstance(d, GateOpened):
        start_key = ("gate", None, d.gate)
    elif isinstance(d, GateDecided):
        end_key = ("gate", None, d.gate)
    if start_key is not None:
        began[start_key] = ev.at
        return None
    if end_key is not None and end_key in began:
        return ev.at - began[end_key]
    return None


def _detail(ev: Event, store: EventStore) -> str:
    d = ev.data
    if isinstance(d, RunStarted):
        labels = d.options.get("labels") or {}
        src = f" from {shown_path(labels['source'])}" if "source" in labels else ""
        return f"graph {d.graph_hash[:12]}{src} inputs {compact(payload_value(d.inputs, store))}"
    if isinstance(d, RunResumed):
        return f"by {d.worker}" + (f": {d.reason}" if d.reason else "")
    if isinstance(d, RunWaiting):
        return "on " + ", ".join(d.on)
    if isinstance(d, RunCompleted):
        return compact(payload_value(d.output, store))
    if isinstance(d, RunFailed):
        return f"{d.error.type}: {d.error.message}"
    if isinstance(d, RunCancelRequested):
        return ": ".join(p for p in (f"by {d.by}" if d.by else "", d.reason) if p)
    if isinstance(d, RunCancelled):
        return d.reason
    if isinstance(d, NodeStarted):
        parts = [f"attempt {d.attempt}"] if d.attempt > 1 else []
        parts += [f"{d.items} items"] if d.items is not None else []
        return ", ".join(parts)
    if isinstance(d, NodeCompleted):
        route = f" -> {','.join(d.route)}" if d.route else ""
        return compact(payload_value(d.output, store)) + route
    if isinstance(d, NodeFailed):
        return f"{d.error.type}: {d.error.message}"
    if isinstance(d, NodeSkipped):
        return d.reason
    if isinstance(d, ModelRequested):
        return d.model
    if isinstance(d, ModelCalled):
        response = payload_value(d.response, store)
        if isinstance(response, dict):
            calls = response.get("tool_calls") or []
            names = ", ".join(str(c.get("name")) for c in calls if isinstance(c, dict))
            content = response.get("content") or ""
            return compact(content) + (f" [calls {names}]" if names else "")
        return compact(response)
    if isinstance(d, ToolRequested):
        return f"{d.tool} {compact(payload_value(d.args, store), 50)}"
    if isinstance(d, ToolReturned):
        if d.error is not None:
            return f"{d.error.type}: {d.error.message}"
        return compact(payload_value(d.result, store))
    if isinstance(d, ClockRead):
        return clock_time(d.value)
    if isinstance(d, GateOpened):
        if d.tool is not None and d.args is not None:
            return f"{d.gate}: {d.tool} {compact(payload_value(d.args, store), 50)}"
        return f"{d.gate}: {d.question}"
    if isinstance(d, GateDecided):
        note = f": {d.note}" if d.note else ""
        return f"{d.gate} {d.decision} by {d.by}{note}"
    if isinstance(d, SignalReceived):
        return f"{d.name} {compact(payload_value(d.payload, store))}"
    if isinstance(d, BudgetExceeded):
        return f"{d.limit} cap {d.cap:g}: spent {d.spent:g} + {d.requested:g} ({d.action})"
    if isinstance(d, BudgetRaised):
        caps = {k: v for k, v in (("usd", d.usd), ("tokens", d.tokens), ("calls", d.calls)) if v}
        return " ".join(f"{k}={v:g}" for k, v in caps.items()) + (f" by {d.by}" if d.by else "")
    return ""


# -- run summaries ----------------------------------------------------------------------


def gate_lines(run_id: str, gate: GateView) -> list[str]:
    """What a gate asks, and the exact commands that decide it."""
    what = gate.question or gate.reason
    lines = [f"gate {gate.id} ({gate.reason}, node {gate.node}): {what}"]
    if gate.tool is not None:
        lines.append(f"  tool  {gate.tool} {compact(gate.args, 200)}")
    if gate.reason == "question":
        lines.append(
            "  answer:  " + command("foldline", "answer", run_id, gate.id, "VALUE", "--by", "you")
        )
    else:
        lines.append("  approve: " + command("foldline", "approve", run_id, gate.id, "--by", "you"))
        lines.append("  reject:  " + command("foldline", "reject", run_id, gate.id, "--by", "you"))
    return lines


def print_outcome(con: Console, view: RunView) -> None:
    """What ``run``, ``resume`` and ``fork`` print: status, spend, and what comes next."""
    status = Text("run ")
    status.append(view.run_id, style="bold")
    status.append(": ")
    status.append(view.status, style=STATUS_STYLE.get(view.status, ""))
    if view.terminal:
        status.append(f" in {duration(view.duration_us)}")
    elif view.status == "waiting" and view.waiting_on:
        status.append(" on " + ", ".join(view.waiting_on))
    con.print(status)
    con.print(Text(_spend(view)))
    print_next(con, view)


def print_next(con: Console, view: RunView) -> None:
    """The output, the error, or what the run waits on and the commands that give it."""
    if view.status == "completed":
        con.print(Text("output: " + compact(view.output, 500)))
    elif view.status == "failed":
        con.print(Text(f"error: {view.error}", style="red"))
    elif not view.terminal:
        for line in waiting_lines(view):
            con.print(Text(line))


def waiting_lines(view: RunView) -> list[str]:
    """For each thing a run waits on, what it is and the command that provides it."""
    out: list[str] = []
    resume = command("foldline", "resume", view.run_id)
    for gate in view.open_gates:
        out += gate_lines(view.run_id, gate)
    for on in view.waiting_on if view.status == "waiting" else []:
        kind, _, name = on.partition(":")
        if kind == "signal" and name not in view.signals:
            out.append(f"signal {name}: the run waits for it")
            out.append(
                "  send:    " + command("foldline", "signal", view.run_id, name) + " [PAYLOAD]"
            )
        elif kind == "timer" and view.waiting_until is not None:
            out.append(f"timer {name}: fires at {date_time(view.waiting_until)}")
            out.append(f"  then:    {resume}")
        elif on == "budget" and not view.budget_raised:
            b = view.budget_exceeded
            why = ""
            if b is not None:
                why = f": {b.spent:g} of {b.cap:g} {b.limit} spent, the call needs {b.requested:g}"
            out.append(f"budget: the next model call could exceed the run's cap{why}")
            out.append(
                "  raise:   "
                + command("foldline", "budget", view.run_id, "--usd", "LIMIT", "--by", "you")
            )
    if not out and not view.terminal:
        out.append(f"resume:  {resume}")
    return out


def _spend(view: RunView) -> str:
    return (
        f"cost {money(view.cost_usd)}, {_plural(view.tokens, 'token')}, "
        f"{_plural(view.model_calls, 'model call')}, {_plural(view.events, 'event')}"
    )


def print_view_header(con: Console, view: RunView) -> None:
    """The lines above ``show``'s timeline."""
    head = Text("run ")
    head.append(view.run_id, style="bold")
    head.append(": ")
    head.append(view.status, style=STATUS_STYLE.get(view.status, ""))
    if view.waiting_on and view.status == "waiting":
        head.append(" on " + ", ".join(view.waiting_on))
    con.print(head)
    graph = f"graph {view.graph_id or '?'} ({(view.graph_hash or '?')[:12]})"
    if view.source:
        graph += f" from {shown_path(view.source)}"
    if view.labels.get("mock") == "1":
        graph += ", mock model"
    con.print(Text(graph))
    started = f"started {date_time(view.started_at)}, {duration(view.duration_us)}"
    con.print(Text(f"{started}, {_spend(view)}"))
