"""Events -> trace directory (FORMAT.md): streaming ``trace.json`` and the files beside it.

``trace.json`` is written as ``[`` then one event per line, in batches; ``close`` writes the
closing ``]``.  A run killed before ``close`` leaves every flushed line readable (and
``repair.py`` can complete the directory).  The writer sees only (thread, event) records
whose events are pre-encoded bytes or orjson-ready objects; it inserts
``ThreadStart``/``ThreadSwitch`` when consecutive records come from different threads.  It
never touches Python objects of the program.

The writer also keeps calls and returns balanced, whatever reaches it: it counts each
thread's open calls as it writes them, drops a ``Return`` that has no open call to end (a
probe that was still running on another thread when a recording window closed), ends a
thread's open calls with ``lost_return`` before its ``ThreadExit``, and on
``checkpoint``/``close`` ends every open call with ``lost_return`` (the main thread's
top-level call stays open at a checkpoint, which the format allows).
"""

import os

import orjson

from .errors import UsageError
from .isolation import PATH, make_directories
from .native import speedups

_CALL_PREFIX = b'{"Call":'
_RETURN_PREFIX = b'{"Return":'


def prepare_out_dir(path, option="--out-dir"):
    """Create ``path`` if needed and check it can hold a trace; returns it absolute.
    Raises UsageError (naming ``option``, the setting it came from) otherwise."""
    path = PATH.abspath(path)
    if PATH.exists(path) and not PATH.isdir(path):
        raise UsageError("%s %s exists and is not a directory" % (option, path))
    try:
        make_directories(path)
        probe = PATH.join(path, ".ctinstrument-write-test")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise UsageError("cannot write the trace to %s: %s" % (path, exc.strerror or exc))
    return path


class TraceWriter:
    """Streams events into ``out_dir/trace.json`` and writes the other files on ``close``.

    ``main_thread``: the thread number whose first call is the top-level one;
    ``lost_return`` (set it before the first checkpoint): the ``Return`` event (bytes) that
    ends a call the recorder lost track of.
    """

    def __init__(self, out_dir, main_thread=1):
        self.out_dir = out_dir
        self.events_written = 0
        self._thread_numbers = set()
        self._last_thread = None
        self._main_thread = main_thread
        self.lost_return = None
        self._open_calls = {}  # thread number -> calls written and not yet returned
        self.steps_written = False
        self._file = open(PATH.join(out_dir, "trace.json"), "wb")
        self._file.write(b"[\n")
        self._first = True
        self._copied = set()

    def write(self, records):
        """Append ``records`` (pairs of thread number or None, event) to ``trace.json``.

        An event is bytes (already JSON), an orjson-serialisable object, or a tuple of
        those written as consecutive events.  ``_join`` (C, or join_records) takes the runs
        of bytes and tuples of bytes on the current thread; ``_write_record`` the rest.
        """
        lines = []
        count = len(records)
        at = 0
        open_calls = self._open_calls
        while at < count:
            at = _join(records, at, lines, open_calls, self._main_thread, self._last_thread)
            if at < count:
                self._write_record(records[at], lines)
                at += 1
        if not self.steps_written:  # a snapshot or an entry step starts so
            self.steps_written = any(line[:8] == b'{"Step":' for line in lines)
        self._write_lines(lines)

    def _write_record(self, record, lines):
        """Append the lines of one record (any thread, any event) to ``lines``."""
        thread, event = record
        open_calls = self._open_calls
        cls = event.__class__
        if cls is bytes and event[:10] == _RETURN_PREFIX or cls is dict and "Return" in event:
            depth = open_calls.get(thread, 0)
            if depth <= (1 if thread == self._main_thread else 0):
                return  # no open call to end (see the module docstring)
            open_calls[thread] = depth - 1
        if thread != self._last_thread and thread is not None:
            self._switch_to(thread, lines)
        if cls is bytes:
            if event[:8] == _CALL_PREFIX:
                open_calls[thread] = open_calls.get(thread, 0) + 1
            lines.append(event)
        elif cls is tuple:
            for part in event:
                if part.__class__ is bytes:
                    if part[:8] == _CALL_PREFIX:
                        open_calls[thread] = open_calls.get(thread, 0) + 1
                    lines.append(part)
                else:
                    if "Call" in part:
                        open_calls[thread] = open_calls.get(thread, 0) + 1
                    lines.append(orjson.dumps(part))
        else:
            if "Call" in event:
                open_calls[thread] = open_calls.get(thread, 0) + 1
            elif "ThreadExit" in event and open_calls.get(thread):
                # A call whose Return was dropped in a window's race: it ends before its
                # thread does.
                lines.extend([self.lost_return] * open_calls[thread])
                open_calls[thread] = 0
            lines.append(orjson.dumps(event))

    def _switch_to(self, thread, lines):
        if thread in self._thread_numbers:
            lines.append(b'{"ThreadSwitch":%d}' % thread)
        else:
            self._thread_numbers.add(thread)
            lines.append(b'{"ThreadStart":%d}' % thread)
        self._last_thread = thread

    def _end_open_calls(self):
        """A ``lost_return`` for every open call (the main thread's top-level one aside)."""
        lines = []
        for thread, depth in self._open_calls.items():
            floor = 1 if thread == self._main_thread else 0
            if depth > floor:
                if thread != self._last_thread:
                    self._switch_to(thread, lines)
                lines.extend([self.lost_return] * (depth - floor))
                self._open_calls[thread] = floor
        self._write_lines(lines)

    def _write_lines(self, lines):
        if not lines:
            return
        if not self._first:  # apart: joining it to the chunk would copy the chunk
            self._file.write(b",\n")
        self._first = False
        self._file.write(b",\n".join(lines))
        self._file.flush()
        self.events_written += len(lines)

    def copy_source(self, path):
        """Copy the source file ``path`` (absolute) to ``files/`` under its own path."""
        if path in self._copied or not PATH.isfile(path):
            return
        self._copied.add(path)
        target = PATH.join(self.out_dir, "files", path.lstrip(os.sep))
        try:
            make_directories(PATH.dirname(target))
            with open(path, "rb") as source, open(target, "wb") as copy:
                copy.write(source.read())
        except OSError:
            pass

    def close(self, metadata, paths, toplevel_return):
        """End every open call, then the top-level one with ``toplevel_return`` (an event),
        finish ``trace.json`` and write ``trace_metadata.json`` and ``trace_paths.json``."""
        self._end_open_calls()
        if self._open_calls.get(self._main_thread):
            self._open_calls[self._main_thread] = 0
            lines = []
            if self._last_thread != self._main_thread:
                self._switch_to(self._main_thread, lines)
            lines.append(orjson.dumps(toplevel_return))
            self._write_lines(lines)
        self.checkpoint(metadata, paths)
        self._file.close()

    def checkpoint(self, metadata, paths):
        """Make the directory a complete trace now: end the open calls, close the JSON
        array of ``trace.json`` and write ``trace_paths.json`` and ``trace_metadata.json``
        (``metadata`` a dict, ``paths`` the Path payloads in order).  ``reopen`` continues
        the same trace (the calls ended here stay ended)."""
        self._end_open_calls()
        self._tail = self._file.tell()
        self._file.write(b"\n]\n")
        self._file.flush()
        write_paths(self.out_dir, paths)
        write_metadata(self.out_dir, metadata)

    def reopen(self):
        """Continue ``trace.json`` after ``checkpoint``: drop the closing bracket."""
        self._file.seek(self._tail)
        self._file.truncate()

    def write_metadata(self, metadata):
        """Write ``trace_metadata.json`` now (``close`` writes it again at the end)."""
        write_metadata(self.out_dir, metadata)


def join_records(records, start, lines, open_calls, main_thread, last_thread):
    """Append to ``lines`` the events of ``records[start:]`` (see TraceWriter.write) up to
    the first that is not a (thread, event) tuple whose thread is an int or None and whose
    event is bytes or a tuple of bytes, or that comes from a thread other than
    ``last_thread``; returns its index (``len(records)``: all taken).  Threads and counts
    that are not ints or None are left to TraceWriter._write_record (nothing is taken).

    Counts the Calls of each thread in ``open_calls`` (thread number -> open calls) and
    drops a Return with no open call to end (see the module docstring).  The reference of
    _ctinstrument_speedups.join, which does the same (and so runs no code of the records)."""
    count = len(records)
    start = min(max(start, 0), count)
    if not (_is_thread(main_thread) and _is_thread(last_thread)):
        return start
    for at in range(start, count):
        record = records[at]
        if type(record) is not tuple or len(record) != 2 or not _is_thread(record[0]):
            return at
        thread, event = record
        if thread != last_thread and thread is not None:
            return at
        cls = type(event)
        if cls is bytes:
            if event[:8] == _CALL_PREFIX:
                open_calls[thread] = _open_calls_of(open_calls, thread) + 1
            elif event[:10] == _RETURN_PREFIX:
                depth = _open_calls_of(open_calls, thread)
                if depth <= (1 if thread == main_thread else 0):
                    continue
                open_calls[thread] = depth - 1
            lines.append(event)
        elif cls is tuple:
            for part in event:
                if type(part) is not bytes:
                    return at
            for part in event:
                if part[:8] == _CALL_PREFIX:
                    open_calls[thread] = _open_calls_of(open_calls, thread) + 1
                lines.append(part)
        else:
            return at
    return count


def _is_thread(thread):
    return thread is None or type(thread) is int


def _open_calls_of(open_calls, thread):
    depth = open_calls.get(thread, 0)
    if type(depth) is not int:
        raise TypeError("open call counts must be ints")
    return depth


_join = join_records if speedups is None else speedups.join


def write_metadata(out_dir, metadata):
    """Write ``metadata`` (a dict) to ``out_dir/trace_metadata.json``, atomically."""
    _replace_file(out_dir, "trace_metadata.json",
                  orjson.dumps(metadata, option=orjson.OPT_INDENT_2))


def write_paths(out_dir, paths):
    """Write ``paths`` (the ``Path`` events' payloads in order) to ``trace_paths.json``."""
    _replace_file(out_dir, "trace_paths.json", orjson.dumps(list(paths)))



def _replace_file(out_dir, name, data):
    # A crash never leaves a torn file: the old one stays until the new one is complete.
    target = PATH.join(out_dir, name)
    partial = "%s.%d.tmp" % (target, os.getpid())
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, target)
