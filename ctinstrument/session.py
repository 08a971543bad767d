"""One recording of this process: selection, import hook, recorder, stream capture and the
SIGTERM finaliser, put together the same way for the CLI and the Python API.

There is at most one session per process (``current()``): the probes are bound into
``builtins`` and instrumented code carries the recorder's ids, so a second recorder could
not make sense of code the first one instrumented.
"""

import atexit
import threading
from sys import _getframe  # bound now: programs replace it (see isolation.py)

from . import explain as _explain
from . import reimport
from .capture import StreamCapture
from .errors import UsageError
from .import_hook import ImportHook
from .recorder import Recorder
from .redaction import Redaction
from .selection import NEVER_RECORDED, Selection
from .termination import SigtermFinaliser
from . import tracing_shield

_current = None
_lock = threading.Lock()
_warned_imported = set()


def current():
    """The session of this process that is installed and not finished, or None."""
    session = _current
    return session if session is not None and not session.finished else None


def check_no_session():
    """Raise UsageError if this process has (or had) a session: before a new one touches
    any file, so a finished trace is never overwritten."""
    if current() is not None:
        raise UsageError("ctinstrument is already recording this process (into %s); "
                         "uninstall that first" % _current.out_dir)
    if _current is not None:
        raise UsageError("ctinstrument records once per process: the trace in %s is "
                         "finished" % _current.out_dir)


class Session:
    """Records this process into ``out_dir`` (created and checked by the caller).

    ``include``/``exclude``: lists of ``selection.Pattern``; ``project_dir``: used when there
    is no include pattern; ``main_module``: the ``-m`` target; ``program``/``args``: what
    ``trace_metadata.json`` names; ``redact``: hide values of secret-looking names,
    ``redact_names`` more such names; ``capture_output``: record stdout/stderr/stdin;
    ``paused``: install without recording until ``start()``; ``settings``: the effective
    options, written to ``trace_metadata.json``; ``explain``: at the end, print why each
    module was or was not instrumented (``"all"``: every module on its own line, see
    explain.py).  Raises UsageError if another session of
    this process exists.
    """

    def __init__(self, out_dir, program, args, include=(), exclude=(), project_dir=None,
                 main_module=None, redact=True, redact_names=(), capture_output=True,
                 paused=False, settings=None, explain=False, cache=True):
        check_no_session()
        self.selection = Selection(include, exclude, project_dir, main_module=main_module)
        self.recorder = Recorder(
            out_dir, program, args, redaction=Redaction(redact_names) if redact else None,
            is_root=self.selection.is_root if self.selection.roots else None)
        self.recorder.extra_metadata["selection"] = self.selection.describe()
        for text in self.selection.own_includes():
            self.recorder.warn("warning: include pattern %s is not recorded: ctinstrument never "
                               "records itself or the modules it runs on (%s)"
                               % (text, ", ".join(NEVER_RECORDED)))
        if settings is not None:
            self.recorder.extra_metadata["settings"] = settings
        self.hook = ImportHook(self.selection, self.recorder, cache=cache)
        self.recorder.extra_metadata["code_cache"] = self.hook.stats
        self.recorder.extra_metadata["verifier"] = self.hook.verifier
        self.out_dir = out_dir
        self.capture_output = capture_output
        self.paused = paused
        self.explain = explain
        self.finished = False
        self._installed = []

    def install(self, finish_at_exit=True):
        """Install the import hook and start recording (unless paused); returns self.

        ``finish_at_exit``: finalise the trace from ``atexit`` (the CLI finalises itself).
        """
        global _current
        with _lock:
            check_no_session()
            _current = self
        recorder = self.recorder
        tracing_shield.install()
        self.hook.install()
        recorder.start(paused=self.paused)
        if not self.paused:
            recorder.write_start_metadata()
        if self.capture_output:
            self._installed.append(StreamCapture(recorder).install())
        self._installed.append(SigtermFinaliser(recorder).install())
        if finish_at_exit:
            atexit.register(self.finish)
        return self

    def warn_already_imported(self, copy=False):
        """Deal with the modules the selection accepts that are already in ``sys.modules``
        (ctinstrument and its dependencies are never accepted); returns the names of those
        left unrecorded, each warned about once per process.

        ``copy``: nothing of the program has run yet, so these modules were imported by
        ctinstrument, its dependencies or the interpreter's start-up: each one that can be
        is removed from ``sys.modules`` so the program imports a recorded copy of it
        (reimport.py; their names go to ``trace_metadata.json`` as ``second_copies``); one
        warning line per module that cannot says why.  Otherwise the
        program may hold them already: one warning line lists them all.
        """
        names = [name for name in reimport.candidates(self.selection)
                 if name not in _warned_imported]
        if copy:
            copied, refused = reimport.evict(names)
            self.recorder.extra_metadata["selection"]["second_copies"] = copied
        else:
            refused = dict.fromkeys(names)
        for name in sorted(refused):
            _warned_imported.add(name)
            why = refused[name]
            self.hook.decisions[name] = (False, _explain.TOO_EARLY + (": " + why if why else ""))
            if why:
                self.recorder.warn("warning: %s was imported before the program started and "
                                   "is not recorded: %s" % (name, why))
        if refused and not copy:
            self.recorder.warn("warning: imported before ctinstrument was installed, so "
                               "not recorded: %s" % ", ".join(sorted(refused)))
        return sorted(refused)

    def start(self):
        """Switch recording on (a new window in the same trace)."""
        if not self.finished:
            self.recorder.resume(_getframe(1))

    def stop(self):
        """Switch recording off and leave a complete trace on disk (``start`` continues it)."""
        if not self.finished:
            self.recorder.pause()

    @property
    def recording(self):
        """Whether probes record now (installed, not paused, not finished)."""
        return not self.finished and not self.recorder.paused

    def finish(self, exit_code=None):
        """Finalise the trace (top-level return ``exit_code``, None if unknown) and remove
        everything installed.  Later calls do nothing."""
        if self.finished:
            return
        self.finished = True
        decisions = _explain.imported_decisions(self.hook.decisions)
        self.recorder.extra_metadata["selection"]["decisions"] = _explain.counts(decisions)
        self.recorder.finish(exit_code)
        for text in self.selection.unmatched_roots():
            self.recorder.warn("warning: activation root %s matched no function of an "
                               "instrumented module" % text)
        if not self.recorder.writer.steps_written:
            self.recorder.warn("warning: nothing was recorded (no instrumented line ran "
                               "while recording was on); --explain shows what was "
                               "instrumented")
        self.hook.uninstall()
        for installed in self._installed:
            installed.uninstall()
        atexit.unregister(self.finish)
        if self.explain:
            self.recorder.report(_explain.report(decisions, every_module=self.explain == "all"))
