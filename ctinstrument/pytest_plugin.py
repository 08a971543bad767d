"""pytest plugin: ``pytest --ctinstrument=PATTERN [--ctinstrument-out=DIR] ...`` records the
selected modules while pytest runs, into one trace.

Registered through the ``pytest11`` entry point (name ``ctinstrument.pytest_plugin``, so
``-p ctinstrument.pytest_plugin`` and the entry point are one plugin); without
``--ctinstrument`` it does nothing but add its options.  The hook is installed in
``pytest_load_initial_conftests``, before conftest files and test modules are imported and
after pytest installed its assertion rewriting, which keeps working (pytest_support.py).
The trace is finalised in ``pytest_unconfigure`` with pytest's exit status.  Options not
given here come from the environment and ``pyproject.toml`` as for ``install_hook``.
"""

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("ctinstrument", "recording into a CodeTracer trace")
    group.addoption("--ctinstrument", action="append", metavar="PATTERN", default=None,
                    help="record modules, paths or functions matching PATTERN (repeatable; "
                         "see ctinstrument's README)")
    group.addoption("--ctinstrument-exclude", action="append", metavar="PATTERN",
                    default=None, help="never record modules matching PATTERN")
    group.addoption("--ctinstrument-out", metavar="DIR", default=None,
                    help="trace directory (default: ctinstrument's out_dir option)")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    options = early_config.known_args_namespace
    if not options.ctinstrument:
        return
    from . import api
    from .errors import UsageError
    try:
        handle = api.install_hook(options.ctinstrument, exclude=options.ctinstrument_exclude,
                                  out_dir=options.ctinstrument_out)
    except UsageError as exc:
        raise pytest.UsageError("ctinstrument: %s" % exc) from None
    early_config.stash[_HANDLE] = handle


def pytest_sessionfinish(session, exitstatus):
    if _HANDLE in session.config.stash:
        session.config.stash[_EXIT_STATUS] = int(exitstatus)


def pytest_unconfigure(config):
    handle = config.stash.get(_HANDLE, None)
    if handle is not None:
        handle.uninstall(config.stash.get(_EXIT_STATUS, None))


_HANDLE = pytest.StashKey()
_EXIT_STATUS = pytest.StashKey()
