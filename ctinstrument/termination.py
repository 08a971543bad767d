"""SIGTERM during a recording: finalise the trace, then die of SIGTERM as the unrecorded
program would (exit status -15 to ``subprocess``, 143 in a shell).

``SigtermFinaliser(recorder).install()`` takes SIGTERM only when its disposition is still the
default, and keeps the program from noticing: ``signal.getsignal`` and ``signal.signal``
report ``SIG_DFL`` where the finaliser is installed (so a program chaining to "the previous
handler" finds none), and a program setting ``SIG_DFL`` gets the finaliser back.  A handler
the program installs replaces it.  The trace ends with an ``Event`` of kind Error naming the
signal and a top-level ``Return`` of 128 + the signal number.

Never: survive the signal, run the program's ``finally`` blocks or ``atexit`` handlers, or
flush its buffered output (a plain run does none of these); finalise while the interrupted
code is inside the recorder (termination waits until that code has returned, within a
bound; a second SIGTERM does not wait); act in a forked child (it dies as with the default).
"""

import _signal
import functools
import os
import signal

from .capture import hide_calling_frame
from .tracing_shield import REAL_SETPROFILE, passes_through

# Code of these modules changes the recorder's state; a signal arriving inside it waits.
RECORDER_MODULES = frozenset("ctinstrument." + name for name in (
    "probes", "recorder", "writer", "values", "redaction"))
# Profile events (calls and returns) a SIGTERM waits for the recorder code it interrupted to
# return: far more than a probe encoding the largest value or a flush takes, a few seconds.
WAIT_EVENTS = 10_000_000


def _is_sigterm(signalnum):
    # Exact types only: a comparison must not run the program's __eq__.
    return type(signalnum) in (int, signal.Signals) and signalnum == signal.SIGTERM


def _is_default(handler):
    return type(handler) in (int, signal.Handlers) and handler == signal.SIG_DFL


def _outermost_recorder_frame(frame):
    """The outermost frame of recorder code on the stack that ``frame`` tops, or None."""
    outermost = None
    while frame is not None:
        if frame.f_globals.get("__name__") in RECORDER_MODULES:
            outermost = frame
        frame = frame.f_back
    return outermost


class SigtermFinaliser:
    """Finalises ``recorder`` on SIGTERM between ``install()`` and ``uninstall()`` (both
    from the main thread); ``wait_events`` bounds the wait for interrupted recorder code."""

    def __init__(self, recorder, wait_events=WAIT_EVENTS):
        self.recorder = recorder
        self.wait_events = wait_events
        self.handler = self._on_sigterm  # one bound method: compared by identity
        # What the wrappers wrap; the finaliser itself calls _signal (no enum conversions,
        # which depend on builtins the program may have broken).
        self.real_signal = signal.signal
        self.real_getsignal = signal.getsignal
        self.signal_wrapper = self.getsignal_wrapper = None
        self.installed = False
        self.waiting = False

    def install(self):
        """Install the handler if SIGTERM has its default disposition; returns self."""
        if _is_default(_signal.getsignal(_signal.SIGTERM)):
            _signal.signal(_signal.SIGTERM, self.handler)
            signal.signal = self.signal_wrapper = self._signal_wrapper()
            signal.getsignal = self.getsignal_wrapper = self._getsignal_wrapper()
            self.installed = True
        return self

    def uninstall(self):
        """Give SIGTERM back its default disposition if the finaliser still holds it, and
        put back ``signal.signal``/``signal.getsignal`` where ours are still in place."""
        if not self.installed:
            return
        self.installed = False
        if signal.signal is self.signal_wrapper:
            signal.signal = self.real_signal
        if signal.getsignal is self.getsignal_wrapper:
            signal.getsignal = self.real_getsignal
        if _signal.getsignal(_signal.SIGTERM) is self.handler:
            _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)

    def _on_sigterm(self, signum, frame):
        if self.waiting:
            self._die(signum)  # a second signal does not wait for the recorder
        try:
            busy = _outermost_recorder_frame(frame) if self._owns_trace() else None
            if busy is not None:
                self._terminate_after(busy, signum)
                return
        except BaseException:
            pass  # whatever failed, the process still dies of the signal
        self._terminate(signum)

    def _owns_trace(self):
        return not self.recorder.finished  # a forked child's is (see Recorder.start)

    def _terminate_after(self, busy, signum):
        """Terminate once the recorder code running in ``busy`` has returned (a profile
        function sees the return); if it has not within ``wait_events`` profile events (a
        recorder stuck in a loop), die at once and leave the trace for ``repair``."""
        budget = self.wait_events

        def on_event(frame, event, arg):
            nonlocal budget
            budget -= 1
            if frame is busy and event == "return":
                REAL_SETPROFILE(None)
                self._terminate(signum)
            elif budget < 0:
                self._die(signum)

        self.waiting = True
        # The interpreter's own: the shield's would hide the recorder frame it waits for.
        REAL_SETPROFILE(on_event)

    def _terminate(self, signum):
        try:
            if self._owns_trace():
                self.recorder.record_error("terminated by SIGTERM")
                self.recorder.finish(128 + signum)
        finally:
            self._die(signum)

    def _die(self, signum):
        _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def _signal_wrapper(self):
        real_signal = self.real_signal

        def signal_(signalnum, handler):
            sigterm = _is_sigterm(signalnum)
            if sigterm and _is_default(handler):
                handler = self.handler
            try:
                previous = real_signal(signalnum, handler)
            except BaseException as exc:
                hide_calling_frame(exc)
                raise
            return signal.SIG_DFL if sigterm and previous is self.handler else previous

        # What signal.signal runs stays visible to a profiler, as in a plain run.
        return passes_through(functools.update_wrapper(signal_, real_signal))

    def _getsignal_wrapper(self):
        real_getsignal = self.real_getsignal

        def getsignal(signalnum):
            try:
                handler = real_getsignal(signalnum)
            except BaseException as exc:
                hide_calling_frame(exc)
                raise
            return signal.SIG_DFL if handler is self.handler else handler

        return passes_through(functools.update_wrapper(getsignal, real_getsignal))
