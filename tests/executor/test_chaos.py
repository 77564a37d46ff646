"""Chaos: SIGKILL a worker at random moments; a fresh process resumes each time.

Asserted, for a >=100-node mixed graph (llm, agents with tool calls, a map fan-out, a
router, code, idempotent and non-idempotent tools):

* the final output equals an uninterrupted run's;
* the calls the provider billed (its side file) are exactly the ``model.called`` events
  of the final log, each once, plus the calls found at each kill billed by the killed
  worker and not in the log: answered and not yet committed, so the answer died with the
  process and the resumed run asked again (at most one per call in flight);
* each non-idempotent tool ran at most once, and every call interrupted between
  ``tool.requested`` and ``tool.returned`` became an ``unknown-outcome`` gate.

``FOLDLINE_CHAOS_KILLS`` sets the number of kills (default 30); ``bench/chaos.py`` runs
many more.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.executor.chaos import run_chaos


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    kills = int(os.environ.get("FOLDLINE_CHAOS_KILLS", "30"))
    seed = int(os.environ.get("FOLDLINE_CHAOS_SEED", str(random.randrange(2**32))))
    report = run_chaos(tmp_path, kills=kills, seed=seed)
    assert report["kills"] >= 30 or kills < 30
    assert report["replayed"] == report["runs"]  # every SIGKILLed run replays identically
    print(f"chaos: {report}")
