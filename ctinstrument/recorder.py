"""Per-process recording state: interning tables, shadow stacks, the event buffer.

The recorder hands out ids to the rewriter (``function_id``, ``line_site``), owns the buffer
the probes append to, flushes it to the ``TraceWriter`` when it grows past ``buffer_limit``
records, and finalises the trace (balanced stacks, top-level ``Return`` with the exit
status, metadata).  Ids follow FORMAT.md: a ``Path``/``Function``/``Type``/``VariableName``
is in the stream before anything uses it, and ids are the order of emission.
"""

import os
import sys
import threading
import uuid

import orjson

from . import __version__, probes
from .rewriter import ProbeRegistry
from .values import KIND_NONE, KIND_RAW, ValueEncoder
from .writer import TraceWriter

TOPLEVEL_FUNCTION = 0
EVENT_WRITE = 0
EVENT_ERROR = 11


class Recorder(ProbeRegistry):
    """Records one program run into ``out_dir`` (an existing, writable directory).

    ``program`` is the path of the entry script (or the module name for ``-m`` when it has
    no file) and becomes path 0; ``args`` are the program's arguments.  Call ``start()``
    before running instrumented code and ``finish(exit_code)`` exactly once at the end.
    """

    def __init__(self, out_dir, program, args, buffer_limit=1 << 14):
        self.out_dir = out_dir
        self.program = program
        self.args = list(args)
        self.buffer_limit = buffer_limit
        self.buffer = []
        self.sites = []
        self.functions = []
        self.stacks = {}
        self.writer = TraceWriter(out_dir)
        self._lock = threading.RLock()
        self._paths = {}
        self._types = {}
        self._variables = {}
        self.failures = 0
        self._warned = False
        self.finished = False
        self.main_thread = 1

        self._function_paths = []
        self.program_path = os.path.abspath(program) if os.path.isfile(program) else program
        self.function_id(self.program_path, 1, "<toplevel>", ())
        self.intern_type(KIND_NONE, "None")
        self.encoder = ValueEncoder(self.intern_type)
        self.main_stack = probes.new_thread_stack(self.main_thread)
        self.main_stack.append([TOPLEVEL_FUNCTION, -1, -1])
        self.stacks[self.main_thread] = self.main_stack
        self.buffer.append((self.main_thread, b'{"Call":{"function_id":0,"args":[]}}'))

    # -- interning (the rewriter and the encoder call these) ------------------------------

    def _intern(self, table, key, event):
        """Id of ``key`` in ``table``, emitting ``event`` (made lazily) on first use.

        The event is encoded before the id is taken, so a failure (e.g. RecursionError in a
        probe running near the recursion limit) never leaves an id without its event.
        """
        known = table.get(key)
        if known is not None:
            return known
        data = orjson.dumps(event())
        with self._lock:
            known = table.get(key)
            if known is None:
                known = len(table)
                self.buffer.append((None, data))
                table[key] = known
            return known

    def path_id(self, path):
        """Id of ``path``, emitting its ``Path`` event and copying the file on first use."""
        known = self._paths.get(path)
        if known is None:
            known = self._intern(self._paths, path, lambda: {"Path": path})
            if os.path.isabs(path):
                self.writer.copy_source(path)
        return known

    def function_id(self, path, line, name, argnames):
        path_id = self.path_id(path)
        arg_ids = tuple(self.variable_id(arg) for arg in argnames)
        entry = orjson.dumps({"Step": {"path_id": path_id, "line": line}})
        data = orjson.dumps({"Function": {"path_id": path_id, "line": line, "name": name}})
        with self._lock:
            fid = len(self.functions)
            self.buffer.append((None, data))
            self.functions.append((entry, arg_ids))
            self._function_paths.append(path_id)
            return fid

    def line_site(self, function_id, line):
        path_id = self._function_paths[function_id]
        event = orjson.dumps({"Step": {"path_id": path_id, "line": line}})
        with self._lock:
            self.sites.append((function_id, line, event))
            return len(self.sites) - 1

    def variable_id(self, name):
        """Id of the variable name ``name``, emitting ``VariableName`` on first use."""
        return self._intern(self._variables, name, lambda: {"VariableName": name})

    def intern_type(self, kind, lang_type):
        """Id of the type (kind, lang_type), emitting its ``Type`` event on first use."""
        return self._intern(self._types, (kind, lang_type), lambda: {
            "Type": {"kind": kind, "lang_type": lang_type, "specific_info": {"kind": "None"}}})

    # -- runtime ----------------------------------------------------------------------------

    def start(self):
        """Bind the probes to this recorder; from now on instrumented code is recorded."""
        probes.bind(self)

    def new_thread(self):
        """A new shadow stack (and trace thread number) for a thread seen for the first time."""
        with self._lock:
            number = len(self.stacks) + 1
            stack = self.stacks[number] = probes.new_thread_stack(number)
            return stack

    def flush(self):
        """Move buffered records to ``trace.json``."""
        with self._lock:
            count = len(self.buffer)
            if not count:
                return
            records = self.buffer[:count]
            del self.buffer[:count]
            try:
                self.writer.write(records)
            except Exception as exc:
                probes.disable()
                self._warn("cannot write the trace (%s: %s); recording stopped"
                           % (type(exc).__name__, exc))

    def probe_failed(self):
        """Count a failure inside a probe and warn once; the program is not affected."""
        self.failures += 1
        if not self._warned:
            exc = sys.exc_info()[1]
            self._warn("internal error while recording (%s: %s); recording continues, "
                       "some events may be missing" % (type(exc).__name__, exc))

    def _warn(self, message):
        self._warned = True
        try:
            sys.__stderr__.write("ctinstrument: %s\n" % message)
        except Exception:
            pass

    def record_error(self, text):
        """Add an ``Event`` of kind Error (an uncaught exception's printed text)."""
        self.buffer.append((self.main_thread,
                            {"Event": {"kind": EVENT_ERROR, "metadata": "", "content": text}}))

    def finish(self, exit_code):
        """Close every open call, end the top-level call with ``exit_code``, write the files."""
        if self.finished:
            return
        self.finished = True
        probes.disable()
        with self._lock:
            for tid, stack in list(self.stacks.items()):
                floor = 1 if tid == self.main_thread else 0
                while len(stack) > floor:
                    stack.pop()
                    self.buffer.append((tid, {"Return": {
                        "return_value": self.encoder.lost_frame_value()}}))
            code = exit_code if isinstance(exit_code, int) else 1
            self.buffer.append((self.main_thread, {"Return": {
                "return_value": self.encoder.encode(code)}}))
            self.flush()
            metadata = {
                "workdir": os.getcwd(),
                "program": self.program,
                "args": self.args,
                "recorder": "ctinstrument %s" % __version__,
                "python": sys.version.split()[0],
                "exit_code": code,
                "recording_id": str(uuid.uuid4()),
                "events": self.writer.events_written,
                "probe_failures": self.failures,
            }
            self.writer.close(metadata, list(self._paths))
