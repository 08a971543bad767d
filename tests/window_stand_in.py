"""A stand-in ``ctinstrument`` module for the oracles (settrace_driver.py, locals_oracle.py)
running a program that opens and closes recording windows: its ``start``/``stop``/
``record``/``is_recording`` switch ``window[0]`` as the real ones switch recording."""

import sys
import types


def install(window):
    """Put the stand-in into ``sys.modules["ctinstrument"]``; ``window`` is a one-item list
    (True while a window is open) that the oracle reads at each event."""
    module = types.ModuleType("ctinstrument")

    def start():
        window[0] = True

    def stop():
        window[0] = False

    class record:
        def __enter__(self):
            self.started = not window[0]
            window[0] = True

        def __exit__(self, *exc_info):
            if self.started:
                window[0] = False

        def __call__(self, function):
            def recorded(*args, **kwargs):
                with record():
                    return function(*args, **kwargs)
            return recorded

    module.start, module.stop, module.record = start, stop, record
    module.is_recording = lambda: window[0]
    sys.modules["ctinstrument"] = module
