"""``python -m ctinstrument``: see ``ctinstrument.cli``."""

from ctinstrument.cli import main

main()
