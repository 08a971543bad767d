"""Exception types of ctinstrument.  User mistakes are ``UsageError``s: the CLI prints their
message on one line and exits with status 2, never a traceback."""


class CtInstrumentError(Exception):
    """Base of every error ctinstrument raises on purpose."""


class UsageError(CtInstrumentError):
    """Bad input from the user (missing script, bad pattern, unwritable output directory)."""


class UnsupportedPython(CtInstrumentError):
    """The running interpreter's bytecode is not one the rewriter generates for."""


class InstrumentationError(CtInstrumentError):
    """A code object could not be rewritten; the caller falls back to the original code."""
