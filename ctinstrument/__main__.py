"""``python -m ctinstrument``: see ``ctinstrument.cli``."""

import sys

# Before anything else: what the interpreter had loaded without us, and no working
# directory on sys.path while ctinstrument imports its dependencies (a program's local
# uuid.py or click.py must not replace them); the runner sets sys.path[0] for the program.
_PRELOADED = frozenset(sys.modules)
del sys.path[0]

from ctinstrument.cli import main  # noqa: E402

main(preloaded=_PRELOADED, launcher_path_removed=True)
