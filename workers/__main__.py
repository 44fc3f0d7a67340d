"""``python -m redpool.workers ...`` is ``redpool worker ...`` (an entry point: the face)."""

import sys

from redpool.cli import main

main(["worker", *sys.argv[1:]])
