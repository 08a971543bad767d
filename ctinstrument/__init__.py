"""ctinstrument: record Python programs into CodeTracer traces by rewriting their bytecode.

See README.md for the command line.  The Python API (api.py): ``install_hook``, ``record``,
``start``, ``stop``, ``is_recording``; user mistakes raise ``UsageError``.  They are
imported on first use, so that ``python -m ctinstrument`` sees the interpreter's modules as
they were before it started.

PYTEST_DONT_REWRITE: pytest marks the packages of its plugins (ours: pytest_plugin.py) for
assertion rewriting and warns when one was imported before it, which ctinstrument always is
under ``python -m ctinstrument -m pytest``; this marker tells pytest to leave it alone.
"""

from . import isolation as _isolation

_isolation.install()
__builtins__ = _isolation.PRIVATE_BUILTINS  # for __getattr__ below

__version__ = "0.1.0"
__all__ = ["install_hook", "record", "start", "stop", "is_recording", "UsageError"]


def __getattr__(name):
    if name in ("install_hook", "record", "start", "stop", "is_recording"):
        from . import api
        return getattr(api, name)
    if name == "UsageError":
        from .errors import UsageError
        return UsageError
    raise AttributeError("module 'ctinstrument' has no attribute %r" % name)
