"""The optional C part (native/speedups.c, module ``_ctinstrument_speedups``), built when a
compiler was there: ``speedups`` is that module when it speaks this version's protocol, else
None (the Python references in probes.py and writer.py are then used; the same bytes)."""

try:
    import _ctinstrument_speedups
except ImportError:
    _ctinstrument_speedups = None

PROTOCOL = 5  # the VERSION of speedups.c these modules call (their arguments and results)

speedups = _ctinstrument_speedups \
    if getattr(_ctinstrument_speedups, "VERSION", None) == PROTOCOL else None
