"""``python -m sink ...`` is ``redpool sink ...``."""

import sys

from redpool.cli import main

main(["sink", *sys.argv[1:]])
