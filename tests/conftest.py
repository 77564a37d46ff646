"""Shared test configuration.

Hypothesis runs without deadlines (this machine is noisy; tests assert counts,
never wall time). ``FOLDLINE_REGEN_GOLDEN=1`` is the one switch that lets golden
files be rewritten; without it a golden mismatch fails.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("default"),
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else "default")
