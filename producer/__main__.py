"""``python -m producer ...`` is ``redpool produce ...``."""

import sys

from redpool.cli import main

main(["produce", *sys.argv[1:]])
