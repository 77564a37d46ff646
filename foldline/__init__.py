"""Foldline: durable execution for LLM agents.

A run is an append-only event log; its state is a fold over that log; every
source of nondeterminism enters through a port, so any recorded run replays
byte-identically. This package is the product surface (CLI, facade); the layers
below are ``substrate``, ``kir``, ``executor`` and ``dsl``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("foldline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
