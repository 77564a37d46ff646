"""The engine: fold -> frontier -> schedule -> node semantics (being built; see ARCHITECTURE.md)."""

__all__: list[str] = []
