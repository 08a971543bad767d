"""A stand-in for the parts of ``pyperf`` that pyperformance's benchmark scripts use.

``benchmarks/pyperformance_suite.py`` puts this directory on ``PYTHONPATH`` and runs a
benchmark script (``bm_NAME.py``, fetched from the pyperformance sdist at run time) as the
main script.  The script builds a ``Runner``, may add its own options to ``runner.argparser``
and calls ``bench_func`` or ``bench_time_func`` once.  Instead of calibrating, spawning
worker processes and computing statistics as pyperf does, this module runs the work once,
at the size given on the command line, and prints two lines:

    work_seconds 0.023456
    work_result <repr of what bench_func's function returned, or '-'>

``work_seconds`` is the time of the work alone: around the call for ``bench_func``, the
time the function itself reports for ``bench_time_func`` (pyperformance measures it around
its loop, after its set-up).  Start-up, imports and the module body are not in it.

Options of our own, beside the script's:

* ``--loops N`` (default 1): the ``loops`` passed to a ``bench_time_func`` function, or how
  many times a ``bench_func`` function is called;
* ``--clock cpu|wall`` (default wall): what ``perf_counter`` (which the scripts call around
  their loops) and ``bench_func``'s timing measure: ``time.perf_counter`` or the process's
  CPU time, ``time.process_time`` (less disturbed by other load on the machine);
* ``--bench-args A,B,...``: replace the positional arguments the script passes to
  ``bench_func``/``bench_time_func`` (each a Python literal), for the scripts that hard-code
  their size (``deltablue``'s ``n``, ``nqueens``'s queen count, ...).
"""

import argparse
import ast
import sys
import time

perf_counter = time.perf_counter
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class Runner:
    def __init__(self, *args, add_cmdline_args=None, **kwargs):
        self.metadata = {}
        self.args = None
        self.argparser = argparse.ArgumentParser()
        self.argparser.add_argument("--loops", type=int, default=1)
        self.argparser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
        self.argparser.add_argument("--bench-args", default=None)

    def parse_args(self, args=None):
        global perf_counter
        if self.args is None:
            self.args = self.argparser.parse_args(args)
            perf_counter = CLOCKS[self.args.clock]
        return self.args

    def _arguments(self, given):
        options = self.parse_args()
        if options.bench_args is None:
            return given
        return tuple(ast.literal_eval(a) for a in options.bench_args.split(",") if a)

    def bench_func(self, name, func, *args, **kwargs):
        args = self._arguments(args)
        loops = self.parse_args().loops
        result = None
        start = perf_counter()
        for _ in range(loops):
            result = func(*args)
        _report(perf_counter() - start, result)

    def bench_time_func(self, name, func, *args, **kwargs):
        args = self._arguments(args)
        _report(func(self.parse_args().loops, *args), None)


def _report(seconds, result):
    text = "-" if result is None else repr(result)
    if " at 0x" in text:           # an object's default repr: only its type is stable
        text = "<%s>" % type(result).__name__
    if len(text) > 200:
        text = text[:200] + "..."
    sys.stdout.write("work_seconds %.6f\nwork_result %s\n" % (seconds, text))
    sys.stdout.flush()
