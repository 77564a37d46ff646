"""The nondeterminism lint: every rule, every import form, the look-alikes it must not flag."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from executor.lint import PRAGMA, RULES, Finding, lint_paths, lint_source, main

ROOT = Path(__file__).resolve().parents[2]


def rules(source: str) -> list[tuple[int, str]]:
    """(line, rule) of each finding in ``source`` (dedented)."""
    return [(f.line, f.rule) for f in lint_source(textwrap.dedent(source))]


def flagged(source: str) -> list[str]:
    return [f.rule for f in lint_source(textwrap.dedent(source))]


# -- one per rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("import time\ntime.time()", "FL001"),
        ("import time\ntime.time_ns()", "FL001"),
        ("import time\ntime.monotonic()", "FL001"),
        ("import time\ntime.perf_counter()", "FL001"),
        ("import time\ntime.process_time()", "FL001"),
        ("import time\ntime.localtime()", "FL001"),
        ("import time\ntime.gmtime()", "FL001"),
        ("import time\ntime.ctime()", "FL001"),
        ("import datetime\ndatetime.datetime.now()", "FL001"),
        ("import datetime\ndatetime.datetime.utcnow()", "FL001"),
        ("import datetime\ndatetime.datetime.today()", "FL001"),
        ("import datetime\ndatetime.date.today()", "FL001"),
        ("import random\nrandom.random()", "FL002"),
        ("import random\nrandom.randint(1, 6)", "FL002"),
        ("import random\nrandom.Random()", "FL002"),
        ("import secrets\nsecrets.token_hex(8)", "FL002"),
        ("import numpy as np\nnp.random.rand(3)", "FL002"),
        ("import numpy.random\nnumpy.random.default_rng()", "FL002"),
        ("import uuid\nuuid.uuid4()", "FL003"),
        ("import uuid\nuuid.uuid1()", "FL003"),
        ("import os\nos.urandom(16)", "FL003"),
        ("import socket\nsocket.create_connection(('h', 1))", "FL004"),
        ("import http.client\nhttp.client.HTTPSConnection('h')", "FL004"),
        ("import urllib.request\nurllib.request.urlopen('u')", "FL004"),
        ("import requests\nrequests.get('u')", "FL004"),
        ("import httpx\nhttpx.post('u')", "FL004"),
        ("import aiohttp\naiohttp.ClientSession()", "FL004"),
        ("import smtplib\nsmtplib.SMTP('h')", "FL004"),
    ],
)
def test_each_rule(source: str, rule: str) -> None:
    assert rules(source) == [(2, rule)]


def test_rule_codes_are_stable() -> None:
    assert RULES == {
        "FL000": "parse",
        "FL001": "clock",
        "FL002": "randomness",
        "FL003": "ids",
        "FL004": "network",
    }


# -- import forms ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("import time as t\nt.time()", "FL001"),
        ("from time import time as now\nnow()", "FL001"),
        ("from time import monotonic\nmonotonic()", "FL001"),
        ("from datetime import datetime\ndatetime.now()", "FL001"),
        ("from datetime import datetime as DT\nDT.utcnow()", "FL001"),
        ("from datetime import date\ndate.today()", "FL001"),
        ("import datetime as dt\ndt.datetime.now()", "FL001"),
        ("from random import choice\nchoice([1, 2])", "FL002"),
        ("import random as r\nr.shuffle([])", "FL002"),
        ("from numpy import random as npr\nnpr.rand()", "FL002"),
        ("from numpy.random import default_rng\ndefault_rng()", "FL002"),
        ("from uuid import uuid4\nuuid4()", "FL003"),
        ("import uuid as u\nu.uuid4().hex", "FL003"),
        ("from os import urandom\nurandom(8)", "FL003"),
        ("import os.path\nos.urandom(8)", "FL003"),
        ("from urllib import request\nrequest.urlopen('u')", "FL004"),
        ("from requests import get as fetch\nfetch('u')", "FL004"),
        ("from http import client\nclient.HTTPConnection('h')", "FL004"),
    ],
)
def test_import_aliases_are_resolved(source: str, rule: str) -> None:
    assert rules(source) == [(2, rule)]


def test_an_import_inside_the_function() -> None:
    source = """
        def node(x):
            import time
            return x, time.time()
    """
    assert rules(source) == [(4, "FL001")]


def test_inside_functions_methods_lambdas_and_comprehensions() -> None:
    source = """
        import random
        import time

        async def tool(n):
            return [random.random() for _ in range(n)]

        class Agent:
            def step(self):
                return time.time()

        stamp = lambda: time.time_ns()
        AT_IMPORT = time.time()
    """
    assert rules(source) == [(6, "FL002"), (10, "FL001"), (12, "FL001"), (13, "FL001")]


def test_a_reference_that_is_called_later_is_flagged() -> None:
    source = """
        import time
        from dataclasses import field
        import random

        stamped = field(default_factory=time.time)
        pick = sorted([3, 1], key=random.random)
    """
    assert rules(source) == [(6, "FL001"), (7, "FL002")]


def test_the_message_names_the_call_and_the_port() -> None:
    (finding,) = lint_source("from time import time as now\n\ndef f():\n    return now()\n", "m.py")
    assert finding == Finding(
        "m.py",
        4,
        12,
        "FL001",
        "now() (time.time) reads the clock; replay would read another time (use ctx.now())",
    )
    assert str(finding) == (
        "m.py:4:12: FL001 now() (time.time) reads the clock; "
        "replay would read another time (use ctx.now())"
    )


def test_findings_are_sorted_and_one_per_use() -> None:
    source = """
        import uuid, time
        x = (uuid.uuid4(), time.time())
        y = time.time()
    """
    found = lint_source(textwrap.dedent(source))
    assert [(f.line, f.col, f.rule) for f in found] == [
        (3, 6, "FL003"),
        (3, 20, "FL001"),
        (4, 5, "FL001"),
    ]


# -- look-alikes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        # a parameter, a local or an attribute that shares a module's name
        "def node(ctx, time):\n    return time.time()",
        "import time\ndef node(time):\n    return time.time()",
        "import time\ndef node():\n    time = object()\n    return time.time()",
        "def node(ctx):\n    return ctx.now(), ctx.new_id(), ctx.random()",
        "async def node(ctx, r):\n    return await ctx.call_model(r), await ctx.call_tool('t', {})",
        "def node(self):\n    return self.random.random(), self.datetime.now()",
        # a user function of the same name
        "def random():\n    return 4\n\ndef node():\n    return random()",
        "def uuid4():\n    return 'x'\nuuid4()",
        "from random import random\ndef random():\n    return 4\nrandom()",
        # the parts of time and datetime that do not read the clock
        "from datetime import datetime\ndatetime.fromisoformat('2024-01-01')",
        "import datetime\ndatetime.datetime(2024, 1, 1)",
        "from datetime import timedelta\ntimedelta(seconds=3)",
        "import time\ntime.sleep(0)",
        "import time\ntime.gmtime(0)",
        "import time\ntime.strptime('2024', '%Y')",
        "import uuid\nuuid.uuid5(uuid.NAMESPACE_DNS, 'x')",
        "import uuid\nuuid.UUID('12345678123456781234567812345678')",
        "import os\nos.path.join('a', 'b')",
        "import urllib.parse\nurllib.parse.quote('a b')",
        # a type named in a signature is not a use
        "import random\ndef node(r: random.Random) -> random.Random:\n    return r",
        "import random\nclass C:\n    r: random.Random",
        # names that are not imported at all, or only relatively
        "time.time()",
        "from . import random\nrandom.random()",
        "from .time import time\ntime()",
        # a name bound both by an import and otherwise is not followed
        "try:\n    import requests\nexcept ImportError:\n    requests = None\nrequests.get('u')",
    ],
)
def test_look_alikes_are_not_flagged(source: str) -> None:
    assert rules(source) == []


def test_a_class_body_name_is_not_seen_by_its_methods() -> None:
    source = """
        import time

        class Clocked:
            time = 3

            def read(self):
                return time.time()
    """
    assert rules(source) == [(8, "FL001")]


def test_global_and_nonlocal() -> None:
    source = """
        import time

        def outer():
            time = None

            def inner():
                global time
                return time.time()

            def other():
                nonlocal time
                return time.time()

            return inner, other
    """
    assert rules(source) == [(9, "FL001")]


def test_a_global_assignment_shadows_the_module_import() -> None:
    source = """
        import time

        def reset():
            global time
            time = None

        def later():
            return time.time()
    """
    assert rules(source) == []


# -- the pragma ------------------------------------------------------------------------


def test_the_pragma_exempts_its_line() -> None:
    assert PRAGMA == "# foldline: allow-nondeterminism"
    source = f"""
        import random
        import time

        def golden_must_fail():
            return time.time()  {PRAGMA}

        def seeded(seed):
            return random.Random(seed).random()  #foldline:allow-nondeterminism

        def other():
            return time.time()
    """
    assert rules(source) == [(12, "FL001")]


def test_the_pragma_must_end_the_line() -> None:
    source = f"import time\nx = time.time()  {PRAGMA} because\n"
    assert rules(source) == [(2, "FL001")]


# -- files -----------------------------------------------------------------------------


def test_a_syntax_error_is_one_finding() -> None:
    (finding,) = lint_source("def f(:\n    pass\n", "bad.py")
    assert finding.rule == "FL000"
    assert finding.path == "bad.py"
    assert finding.line == 1
    assert finding.message.startswith("cannot parse: ")


def test_lint_paths_walks_directories_sorted_and_skips_caches(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "b.py").write_text("import time\ntime.time()\n")
    (tmp_path / "pkg" / "sub" / "a.py").write_text("import uuid\nuuid.uuid4()\n")
    (tmp_path / "pkg" / "notes.txt").write_text("import time\ntime.time()\n")
    (tmp_path / "pkg" / "broken.py").write_bytes(b"def (\n")
    for skipped in (".venv", "__pycache__"):
        (tmp_path / "pkg" / skipped).mkdir()
        (tmp_path / "pkg" / skipped / "c.py").write_text("import random\nrandom.random()\n")
    single = tmp_path / "single.py"
    single.write_text("import os\nos.urandom(1)\n")
    found = lint_paths([tmp_path / "pkg", str(single), tmp_path / "missing"])
    assert [(Path(f.path).name, f.rule) for f in found] == [
        ("b.py", "FL001"),
        ("broken.py", "FL000"),
        ("a.py", "FL003"),
        ("single.py", "FL003"),
    ]
    assert found == sorted(found)


def test_lint_paths_reads_the_encoding_cookie(tmp_path: Path) -> None:
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\nimport time\nname = '\xe9'\ntime.time()\n")
    assert [(f.line, f.rule) for f in lint_paths([path])] == [(4, "FL001")]


def test_main_prints_and_fails_on_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "n.py"
    path.write_text("import random\nrandom.random()\n")
    assert main([str(path)]) == 1
    assert capsys.readouterr().out.startswith(f"{path}:2:1: FL002 random.random() draws randomness")
    path.write_text("def node(ctx):\n    return ctx.random()\n")
    assert main([str(path)]) == 0


def test_examples_and_golden_fixtures_are_deterministic() -> None:
    """The CI gate: code under examples/ and golden/ reads the world only through ports.

    A golden case that is nondeterministic on purpose marks its line with the pragma.
    """
    found = lint_paths([ROOT / "examples", ROOT / "golden"])
    assert found == [], "\n".join(map(str, found))
