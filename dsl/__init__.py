"""Authoring front-ends that compile to KIR (being built; see ARCHITECTURE.md)."""

__all__: list[str] = []
