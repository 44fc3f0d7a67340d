"""``python -m workers ...`` is ``redpool worker ...``."""

import sys

from redpool.cli import main

main(["worker", *sys.argv[1:]])
