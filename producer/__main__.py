"""``python -m redpool.producer ...`` is ``redpool produce ...`` (an entry point: the face)."""

import sys

from redpool.cli import main

main(["produce", *sys.argv[1:]])
