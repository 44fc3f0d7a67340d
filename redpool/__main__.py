"""``python -m redpool`` is the ``redpool`` command."""

from redpool.cli import main

main()
