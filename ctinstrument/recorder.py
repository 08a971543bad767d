"""Per-process recording state: interning tables, shadow stacks, the event buffer.

The recorder hands out ids to the rewriter (``function_id``, ``line_site``), owns the buffer
the probes append to, flushes it to the ``TraceWriter`` when it grows past ``buffer_limit``
records, and finalises the trace (balanced stacks, top-level ``Return`` with the exit
status, metadata).  Ids follow FORMAT.md: a ``Path``/``Function``/``Type``/``VariableName``
is in the stream before anything uses it, and ids are the order of emission.
"""

import itertools
import os
import sys
import threading
import uuid

import orjson

from . import __version__, probes
from .protocol import ProbeRegistry
from .values import KIND_NONE, ValueEncoder, safe_text
from .writer import TraceWriter
from .isolation import PATH

# Bound now: programs replace them (see isolation.py).
_getcwd = os.getcwd
_exc_info = sys.exc_info

TOPLEVEL_FUNCTION = 0
EVENT_WRITE = 0
EVENT_READ = 3
EVENT_ERROR = 11
# Longest Write/Read content one event grows to by merging consecutive pieces (characters).
IO_MERGE_LIMIT = 8192


# Probe failures after which recording stops (see Recorder.probe_failed).
FAILURE_LIMIT = 1000


# The Step of a line site or a function's entry, kept for the whole run: formatted, not
# orjson's output, which keeps the ~4 KB buffer it was written into (probes._kept).
_STEP = b'{"Step":{"path_id":%d,"line":%d}}'


class Recorder(ProbeRegistry):
    """Records one program run into ``out_dir`` (an existing, writable directory).

    ``program`` is the path of the entry script (or the module name for ``-m`` when it has
    no file) and becomes path 0; ``args`` are the program's arguments; ``redaction`` a
    ``Redaction`` deciding which variable names hold secrets (None: record everything);
    ``limits`` the value ``Limits``; ``is_root(module_name, path, qualname)`` tells which
    functions are activation roots (None: no roots, everything instrumented is recorded).
    Call ``start()`` before running instrumented code and ``finish(exit_code)`` at the end;
    ``pause()``/``resume()`` in between delimit recording windows.
    """

    def __init__(self, out_dir, program, args, buffer_limit=1 << 12, redaction=None,
                 limits=None, is_root=None):
        self.out_dir = out_dir
        # Taken now: at exit the program may have changed directory or broken builtins
        # that library code (uuid, os.path) relies on.
        self.workdir = _getcwd()
        self.recording_id = str(uuid.uuid4())
        # The real stderr: output capture replaces sys.__stderr__ later, and the recorder's
        # own warnings are not program output.
        self._stderr = sys.__stderr__
        self.program = program
        self.args = list(args)
        self.buffer_limit = buffer_limit
        self.buffer = []
        self.sites = []
        self.callbacks = bytearray()  # see probes._callbacks
        # One byte per line site: 1 if it is in an activation root (the 3.10 step gate).
        self.root_sites = bytearray()
        self.stores = []
        self.functions = []
        self.namespaces = {}
        self.redacted = set()
        self.redaction = redaction
        self._places = itertools.count(1).__next__
        self.stacks = {}
        self.main_thread = 1
        self.writer = TraceWriter(out_dir, self.main_thread)
        self._lock = threading.RLock()
        self._paths = {}
        self._types = {}
        self._variables = {}
        self.failures = 0
        self._warned = False
        self.finished = False

        self._function_paths = []
        self._module_names = {}
        self.is_root = is_root
        self.paused = False
        self.windows = 0
        # Sections other parts add to trace_metadata.json (name -> JSON-able value).
        self.extra_metadata = {}
        self.program_path = PATH.abspath(program) if PATH.isfile(program) else program
        self.function_id(self.program_path, 1, "<toplevel>", (), (), "function", None)
        self.intern_type(KIND_NONE, "None")
        self.encoder = ValueEncoder(self.intern_type, limits,
                                    redaction.is_secret if redaction is not None else None)
        self.writer.lost_return = orjson.dumps(
            {"Return": {"return_value": self.encoder.lost_frame_value()}})
        # id(code object) -> (code object, function id), for frames running when a
        # recording window opens (see probes.reenter).
        self.code_functions = {}
        self.main_stack = probes.new_thread_stack(self.main_thread)
        self.main_stack.append(probes.ShadowFrame(TOPLEVEL_FUNCTION, -1, -1, {}, (), False))
        self.stacks[self.main_thread] = self.main_stack
        self.buffer.append((self.main_thread, {"Call": {"function_id": 0, "args": []}}))

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
            if PATH.isabs(path):
                self.writer.copy_source(path)
        return known

    def function_id(self, path, line, name, argnames, cellnames, kind, module_id):
        path_id = self.path_id(path)
        # Implicit parameters (a comprehension's ".0") are not shown: id -1.
        arg_ids = tuple(-1 if arg.startswith(".") else self.variable_id(arg)
                        for arg in argnames)
        cell_ids = tuple(self.variable_id(cell) for cell in cellnames)
        entry = _STEP % (path_id, line)
        data = orjson.dumps({"Function": {"path_id": path_id, "line": line, "name": name}})
        with self._lock:
            fid = len(self.functions)
            namespace = None
            if kind == "module":
                namespace = self.namespaces[fid] = {}
                self._module_names[fid] = name[1:-1]
            root = kind == "function" and self.is_root is not None and self.is_root(
                self._module_names.get(module_id if module_id is not None else fid), path, name)
            self.buffer.append((None, data))
            self.functions.append((entry, arg_ids, cell_ids, kind, namespace,
                                   module_id if module_id is not None else fid, path, root))
            short = name.rpartition(".")[2]
            self.callbacks.append(short[:2] == "__" == short[-2:] and short not in
                                  ("__init__", "__call__"))
            self._function_paths.append(path_id)
            return fid

    def function_path(self, fid):
        """The source path of function ``fid``."""
        return self.functions[fid][6]

    def code_bound(self, code, function_id):
        self.code_functions[id(code)] = (code, function_id)

    def line_site(self, function_id, line, flags):
        path_id = self._function_paths[function_id]
        event = _STEP % (path_id, line)
        with self._lock:
            self.sites.append((function_id, line, event, flags))
            self.root_sites.append(self.functions[function_id][7])
            return len(self.sites) - 1

    def store_site(self, function_id, name, in_module_namespace):
        vid = self.variable_id(name)
        namespace = None
        if in_module_namespace:
            namespace = self.namespaces.get(self.functions[function_id][5])
        with self._lock:
            self.stores.append((function_id, vid, namespace))
            return len(self.stores) - 1

    def new_place(self):
        """A new place id for the assignment history (VariableCell/AssignCell); never
        reused (a C-level counter: no lock on the probes' path)."""
        return self._places()

    def variable_id(self, name):
        """Id of the variable name ``name``, emitting ``VariableName`` on first use."""
        known = self._variables.get(name)
        if known is None:
            known = self._intern(self._variables, name, lambda: {"VariableName": name})
            if self.redaction is not None and self.redaction.is_secret(name):
                self.redacted.add(known)
        return known

    def redacted_value(self, vid):
        """The value record shown instead of a secret's value (counted)."""
        return self.encoder.redacted_value()

    def intern_type(self, kind, lang_type, fields=None):
        """Id of the type (kind, lang_type[, field names]), emitting its ``Type`` event on
        first use.  Struct fields are typed ``object``: each field value carries its own
        type id."""
        if fields is None:
            info = {"kind": "None"}
        else:
            field_type = self.encoder.raw_type
            info = {"kind": "Struct",
                    "fields": [{"name": name, "type_id": field_type} for name in fields]}
        return self._intern(self._types, (kind, lang_type, fields), lambda: {
            "Type": {"kind": kind, "lang_type": lang_type, "specific_info": info}})

    # -- runtime ----------------------------------------------------------------------------

    def start(self, paused=False):
        """Bind the probes to this recorder; from now on instrumented code is recorded
        (``paused``: not before ``resume``)."""
        probes.bind(self, gated=self.is_root is not None)
        self.windows = 1
        if paused:
            self.pause()
            self.windows = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget_in_child)

    def _forget_in_child(self):
        # A forked child must not write into the parent's trace: it runs unrecorded.
        probes.disable()
        self.finished = True
        del self.buffer[:]

    def new_thread(self):
        """A new shadow stack (and trace thread number) for a thread seen for the first time."""
        with self._lock:
            number = len(self.stacks) + 1
            stack = self.stacks[number] = probes.new_thread_stack(number)
            return stack

    def flush(self):
        """Move buffered records to ``trace.json``; not while recording is paused (the
        directory then holds a finished trace: what probes still running on other threads
        append is written when recording resumes or finishes)."""
        with self._lock:
            if not self.paused:
                self._write_buffer()

    def _write_buffer(self):
        count = len(self.buffer)
        if not count:
            return
        records = self.buffer[:count]
        del self.buffer[:count]
        try:
            self.writer.write(records)
        except Exception as exc:
            probes.disable()
            self._warned = True
            self.warn("cannot write the trace (%s: %s); recording stopped"
                       % (type(exc).__name__, exc))

    def probe_failed(self):
        """Count a failure inside a probe and warn once; the program is not affected.
        At FAILURE_LIMIT failures recording stops, with a second warning.

        (A RecursionError is counted by the probe itself and not reported: the program runs
        at the recursion limit, where a probe's frame does not fit.)
        """
        exc = _exc_info()[1]
        if isinstance(exc, probes.Unrecorded):
            return
        self.failures += 1
        if not self._warned:
            self._warned = True
            self.warn("internal error while recording (%s: %s); recording continues, "
                       "some events may be missing" % (type(exc).__name__, exc))
        elif self.failures == FAILURE_LIMIT:
            # A failure that repeats at every probe would cost the program more and more
            # (state a failed probe could not clear piles up): recording ends here, the
            # trace so far is kept.
            probes.disable()
            self.warn("%d internal errors while recording; recording stopped, the trace "
                      "keeps what was recorded so far" % FAILURE_LIMIT)

    def warn(self, message):
        """Write ``ctinstrument: message`` to the real stderr (never raises)."""
        try:
            self._stderr.write("ctinstrument: %s\n" % message)
            self._stderr.flush()
        except Exception:
            pass

    def report(self, lines):
        """Write ``lines``, each as ``ctinstrument: line``, to the real stderr at once
        (never raises)."""
        try:
            self._stderr.write("".join("ctinstrument: %s\n" % line for line in lines))
            self._stderr.flush()
        except Exception:
            pass

    def describe_exception(self, exception):
        """Text naming an exception and its simple arguments, built without user code."""
        return safe_text(self.encoder.raw(exception)["r"])

    def record_error(self, text):
        """Add an ``Event`` of kind Error (an uncaught exception's printed text)."""
        self.buffer.append((self.main_thread,
                            {"Event": {"kind": EVENT_ERROR, "metadata": "", "content": text}}))

    def _metadata(self):
        return {
            "workdir": self.workdir,
            "program": self.program,
            "args": self.args,
            "recorder": "ctinstrument %s" % __version__,
            "python": sys.version.split()[0],
            "recording_id": self.recording_id,
            "events": self.writer.events_written,
            "probe_failures": self.failures,
            "redactions": self.encoder.redactions,
            "windows": self.windows,
            **self.extra_metadata,
        }

    def pause(self):
        """End a recording window: the open calls end in the trace (the writer closes them,
        and every thread's shadow stack is emptied when it next records), and a complete,
        conformant trace directory is left on disk (the top-level call stays open, which the
        format allows), which ``resume`` continues."""
        with self._lock:  # threads may start and stop concurrently
            if self.finished or self.paused:
                return
            probes.disable()
            self.paused = True
            probes.end_window()
            self._write_buffer()
            metadata = self._metadata()
            metadata["paused"] = True
            self.writer.checkpoint(metadata, list(self._paths))

    def resume(self, frame=None):
        """Start a new recording window in the same trace after ``pause``.  The
        instrumented frames on the stack of ``frame`` (the caller of ``start()``) are
        entered again as calls, outermost first; other frames already running appear as
        calls when their next line runs."""
        with self._lock:
            if self.finished or not self.paused:
                return
            self.writer.reopen()
            self.paused = False
            self.windows += 1
            probes.enable()
        if frame is not None:
            probes.reenter(frame)

    def finish(self, exit_code):
        """Close every open call, end the top-level call with ``exit_code`` (None when it is
        not known), write the files.  Later calls do nothing."""
        if self.finished:
            return
        self.finished = True
        probes.disable()
        with self._lock:
            if self.paused:
                self.writer.reopen()
                self.paused = False
            probes.end_window()
            # An int subclass (pytest's ExitCode) becomes its plain value, without user code.
            code = (int.__int__(exit_code) if isinstance(exit_code, int)
                    else None if exit_code is None else 1)
            # Encoded before the flush: it may define a type (a big exit status).
            toplevel_return = {"Return": {"return_value": self.encoder.encode(code)}}
            self._write_buffer()
            metadata = self._metadata()
            metadata["exit_code"] = code
            self.writer.close(metadata, list(self._paths), toplevel_return)

    # -- crash safety and program input/output --------------------------------------------

    def write_start_metadata(self):
        """Flush the buffered prologue and write a provisional ``trace_metadata.json`` (with
        ``"incomplete": true``), so that a run killed before ``finish`` still leaves the
        program, its arguments and the working directory for ``ctinstrument repair``;
        ``finish`` replaces it."""
        self.flush()
        self.writer.write_metadata({
            "workdir": _getcwd(),
            "program": self.program,
            "args": self.args,
            "recorder": "ctinstrument %s" % __version__,
            "python": sys.version.split()[0],
            "incomplete": True,
            **self.extra_metadata,
        })

    _last_io = None  # the latest Write/Read record, which the next piece may extend

    def record_io(self, thread, kind, stream, text):
        """Add ``text`` (a str) that thread number ``thread`` wrote to (``EVENT_WRITE``) or
        read from (``EVENT_READ``) ``stream`` (``"stdout"``, ``"stderr"``, ``"stdin"``) as an
        ``Event`` at that thread's current step.

        A piece that directly follows the same thread's piece of the same kind and stream,
        with nothing recorded in between (the parts ``print()`` writes), extends that event
        up to ``IO_MERGE_LIMIT`` characters.  Under the lock, so a flush never takes the
        event away between the check and the extension.
        """
        if not text.isascii():
            text = safe_text(text)
        with self._lock:
            last = self._last_io
            tail = self.buffer[-1:]
            if tail and tail[0] is last and last[0] == thread:
                event = last[1]["Event"]
                if (event["kind"] == kind and event["metadata"] == stream
                        and len(event["content"]) < IO_MERGE_LIMIT):
                    event["content"] += text
                    return
            self._last_io = last = (thread, {"Event": {
                "kind": kind, "metadata": stream, "content": text}})
            self.buffer.append(last)
            if len(self.buffer) > self.buffer_limit:
                self.flush()
