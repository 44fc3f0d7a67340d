"""``python -m redpool.sink ...`` is ``redpool sink ...`` (an entry point: the face)."""

import sys

from redpool.cli import main

main(["sink", *sys.argv[1:]])
