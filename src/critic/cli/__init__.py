"""The top layer: the ``critic`` command line (one module per command group)."""
