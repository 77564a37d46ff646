"""The ``foldline`` subcommands, one module per family; :mod:`foldline.cli` registers them."""

__all__: list[str] = []
