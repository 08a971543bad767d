"""Record the modules pytest loads itself: test modules, conftest files, registered helpers.

pytest puts its ``AssertionRewritingHook`` first in ``sys.meta_path`` after ctinstrument's
finder was installed, so the modules it rewrites (test modules, ``conftest.py``, names given
to ``pytest.register_assert_rewrite``) are found, rewritten, cached and executed by pytest and
never reach our finder.  Instead of competing for ``sys.meta_path[0]``, ctinstrument lets
pytest do all of that and transforms the code object between pytest's rewrite and its
execution: ``AssertionRewritingHook.exec_module`` ends with ``exec(co, module.__dict__)``,
where ``exec`` is a global name of ``_pytest.assertion.rewrite``.  That name is bound to a
function that instruments ``co`` when it is the body of a module the selection accepts, then
runs it with the real ``exec``.  pytest has written its own pyc before that call, so its cache
only ever holds the assertion-rewritten code, never probes.

Private pytest API relied on, checked before use: the module ``_pytest.assertion.rewrite``
with a class ``AssertionRewritingHook`` whose ``exec_module`` calls the global ``exec`` (if
another tool bound that name first, ours calls that one).  If that is not what the installed
pytest has, one warning says so and pytest loads those modules unrecorded.  This module never
imports pytest (it only adapts a pytest the program imported), and nothing in it may make a
test run fail.
"""

import builtins
import sys
import types


REWRITE_MODULE = "_pytest.assertion.rewrite"
_REAL_EXEC = exec
# What ``exec`` called from pytest's module would give a namespace without ``__builtins__``
# (called from here it would give ctinstrument's private copy, see isolation.py).
_PROGRAM_BUILTINS = builtins.__dict__
_MARK = "_ctinstrument_hook"  # attribute of our ``exec``: the ImportHook it serves
_NEXT = "_ctinstrument_next"  # attribute of our ``exec``: the binding it replaced, or None


def _uses_global_exec(rewrite):
    """Whether ``rewrite`` is the module this adapter knows (see the module docstring)."""
    hook_class = getattr(rewrite, "AssertionRewritingHook", None)
    exec_module = getattr(hook_class, "exec_module", None)
    code = getattr(exec_module, "__code__", None)
    return isinstance(hook_class, type) and code is not None and "exec" in code.co_names


def attach(rewrite, hook):
    """Make pytest's assertion-rewriting loader (module ``rewrite``) hand the code of the
    modules ``hook`` selects to ``hook.instrument``; returns whether it could."""
    current = rewrite.__dict__.get("exec")
    if getattr(current, _MARK, None) is hook:
        return True
    if (current is not None and not callable(current)) or not _uses_global_exec(rewrite):
        hook.warn_once("pytest", "this pytest's assertion rewriting is not one ctinstrument "
                       "can follow; modules pytest loads itself (test modules, conftest "
                       "files, pytest.register_assert_rewrite) run unrecorded")
        return False
    # Another tool may have bound the name first: chain to it.
    rewrite.exec = _make_exec(hook, rewrite.AssertionRewritingHook, current)
    return True


def detach(rewrite, hook):
    """Undo ``attach`` (if ``rewrite`` still has our ``exec``)."""
    ours = rewrite.__dict__.get("exec")
    if getattr(ours, _MARK, None) is hook:
        previous = getattr(ours, _NEXT)
        if previous is None:
            del rewrite.exec
        else:
            rewrite.exec = previous


def _make_exec(hook, loader_class, previous):
    run = _REAL_EXEC if previous is None else previous

    def exec(source, *args, **kwargs):  # noqa: A001 (it replaces exec in pytest's module)
        __tracebackhide__ = True  # pytest leaves this frame out of the tracebacks it shows
        if len(args) == 1 and not kwargs and type(source) is types.CodeType \
                and type(args[0]) is dict:
            args[0].setdefault("__builtins__", _PROGRAM_BUILTINS)
            source = _instrumented(hook, loader_class, source, args[0])
        return run(source, *args, **kwargs)

    setattr(exec, _MARK, hook)
    setattr(exec, _NEXT, previous)
    return exec


def _instrumented(hook, loader_class, code, namespace):
    """``code`` instrumented if it is the body of a selected module pytest is loading."""
    try:
        spec = namespace.get("__spec__")
        if not isinstance(getattr(spec, "loader", None), loader_class) \
                or namespace.get("__name__") != spec.name or not spec.origin:
            return code
        name = spec.name
        accepted, reason = hook.selection.accepts(name, spec.origin)
        hook.decisions[name] = (accepted, reason)
        if not accepted:
            return code
        return hook.instrument(code, name, spec.origin)
    except Exception as exc:  # never fail the test run: the module runs unrecorded
        name = namespace.get("__name__") or code.co_filename
        hook.warn_once(name, "cannot instrument %s loaded by pytest (%s: %s); running it "
                       "unrecorded" % (name, type(exc).__name__, exc))
        return code


class AttachAfterLoad:
    """Loader proxy for ``_pytest.assertion.rewrite``: runs the real loader, puts it back in
    the module's spec, then attaches.  Everything else is forwarded to the real loader."""

    def __init__(self, loader, hook):
        self._loader = loader
        self._hook = hook

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            self._loader.exec_module(module)
        finally:
            if module.__spec__ is not None and module.__spec__.loader is self:
                module.__spec__.loader = self._loader
            if module.__dict__.get("__loader__") is self:
                module.__loader__ = self._loader
        attach(module, self._hook)


def attach_if_loaded(hook):
    """Attach to a pytest imported before ``hook`` was installed."""
    rewrite = sys.modules.get(REWRITE_MODULE)
    if rewrite is not None:
        attach(rewrite, hook)


def detach_if_loaded(hook):
    rewrite = sys.modules.get(REWRITE_MODULE)
    if rewrite is not None:
        detach(rewrite, hook)
