"""Complete the trace directory of a recording that never finished (SIGKILL, ``os._exit``, a
crash): ``python -m ctinstrument repair DIR``.

Such a directory holds ``trace.json`` without its closing ``]`` (the writer appends whole
batches of lines, so only the last line can be torn), no ``trace_paths.json``, and either no
``trace_metadata.json`` or the provisional one written at start (``"incomplete": true``).
Repair keeps the complete event lines up to the first unreadable one, closes every call still
open with a ``Return`` of a ``Raw`` record saying the frame was cut off (per thread:
``ThreadStart``/``ThreadSwitch`` tell whose stack a ``Call``/``Return`` belongs to), and
writes ``trace_paths.json`` from the ``Path`` events and the metadata with ``"repaired":
true``.  A directory that is already a complete trace is left as it is.

Never: change, reorder or drop a readable event before the first unreadable line; hold the
trace in memory (it is read and written one line at a time); leave a half-written
``trace.json`` (the repaired file replaces it by one rename).
"""

import os
import sys
import uuid
from collections import Counter

import orjson

from .errors import UsageError
from .values import KIND_RAW
from .writer import write_metadata, write_paths

CUT_OFF_TEXT = "<frame cut off: the recording ended before it returned>"


class RepairSummary:
    """What ``repair`` did: ``events`` kept, ``dropped`` unreadable lines at the end,
    ``closed`` calls closed, ``threads`` whose calls were closed; ``complete`` when the
    directory already was a complete trace (then nothing was read or written)."""

    def __init__(self, trace_dir, complete=False, events=0, dropped=0, closed=0, threads=0):
        self.trace_dir = trace_dir
        self.complete = complete
        self.events = events
        self.dropped = dropped
        self.closed = closed
        self.threads = threads

    def __str__(self):
        if self.complete:
            return "%s is already a complete trace; nothing to repair" % self.trace_dir
        return ("repaired %s: kept %d events, dropped %d unreadable line(s), closed %d open "
                "call(s) in %d thread(s)" % (self.trace_dir, self.events, self.dropped,
                                            self.closed, self.threads))


class _Replay:
    """What the kept events leave open: calls per thread, paths, the Raw type, threads."""

    def __init__(self):
        self.open_calls = Counter()
        self.paths = []
        self.types = 0
        self.raw_type = None
        self.thread = None  # events before any ThreadStart belong to no named thread
        self.alive = set()
        self.toplevel_thread = None

    def feed(self, name, payload):
        if name == "Call":
            if not self.open_calls:  # the first Call: the top-level one
                self.toplevel_thread = self.thread
            self.open_calls[self.thread] += 1
        elif name == "Return":
            if self.open_calls[self.thread]:
                self.open_calls[self.thread] -= 1
        elif name == "ThreadStart" or name == "ThreadSwitch":
            self.thread = payload
            self.alive.add(payload)
        elif name == "ThreadExit":
            self.alive.discard(payload)
        elif name == "Path":
            self.paths.append(payload)
        elif name == "Type":
            if (self.raw_type is None and type(payload) is dict
                    and payload.get("kind") == KIND_RAW and payload.get("lang_type") == "object"):
                self.raw_type = self.types
            self.types += 1

    def closing_events(self):
        """The events that close every open call, the top-level thread's last."""
        threads = [t for t, count in self.open_calls.items() if count]
        threads.sort(key=lambda t: t == self.toplevel_thread)
        events = []
        raw_type = self.raw_type
        if threads and raw_type is None:
            raw_type = self.types
            events.append({"Type": {"kind": KIND_RAW, "lang_type": "object",
                                    "specific_info": {"kind": "None"}}})
        cut_off = {"Return": {"return_value": {"kind": "Raw", "r": CUT_OFF_TEXT,
                                               "type_id": raw_type}}}
        current = self.thread
        for thread in threads:
            restarted = thread is not None and thread not in self.alive
            if restarted:
                events.append({"ThreadStart": thread})
            elif thread != current and thread is not None:
                events.append({"ThreadSwitch": thread})
            events.extend([cut_off] * self.open_calls[thread])
            if restarted:
                events.append({"ThreadExit": thread})
            current = thread
        return events, threads


def repair(trace_dir):
    """Make ``trace_dir`` a complete trace in place; returns a ``RepairSummary``.

    Raises ``UsageError`` when ``trace_dir`` is not a trace directory (or holds no complete
    event), ``OSError`` when it cannot be read or written.
    """
    trace_path = os.path.join(trace_dir, "trace.json")
    if not os.path.isdir(trace_dir):
        raise UsageError("%s is not a directory" % trace_dir)
    if not os.path.isfile(trace_path):
        raise UsageError("%s is not a trace directory: it has no trace.json" % trace_dir)
    metadata = _read_metadata(trace_dir)
    if (metadata is not None and not metadata.get("incomplete") and _is_closed(trace_path)
            and os.path.isfile(os.path.join(trace_dir, "trace_paths.json"))):
        return RepairSummary(trace_dir, complete=True)
    replay = _Replay()
    partial = "%s.%d.tmp" % (trace_path, os.getpid())
    try:
        with open(trace_path, "rb") as source, open(partial, "wb") as target:
            kept, dropped = _copy_events(source, target, replay, trace_path)
            closing, threads = replay.closing_events()
            for event in closing:
                target.write(b",\n" + orjson.dumps(event))
            target.write(b"\n]\n")
        os.replace(partial, trace_path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    write_paths(trace_dir, replay.paths)
    write_metadata(trace_dir, _repaired_metadata(metadata, replay.paths, kept + len(closing)))
    closed = sum(1 for event in closing if "Return" in event)
    return RepairSummary(trace_dir, events=kept, dropped=dropped, closed=closed,
                         threads=len(threads))


def _is_closed(trace_path):
    """Whether ``trace_path`` ends with the ``]`` that closes the array of events."""
    with open(trace_path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 16))
        return handle.read().rstrip().endswith(b"]")


def _copy_events(source, target, replay, trace_path):
    """Copy the readable event lines of ``source`` into ``target`` as a JSON array still
    open, feeding ``replay``; returns (events kept, unreadable lines dropped)."""
    if source.readline().strip() != b"[":
        raise UsageError("%s is not a trace: it does not start a JSON array of events"
                         % trace_path)
    target.write(b"[\n")
    kept = dropped = 0
    for line in source:
        line = line.strip()
        if dropped:
            dropped += bool(line)
            continue
        if not line:
            continue
        if line == b"]":
            break
        body = line[:-1] if line.endswith(b",") else line
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            event = None
        if type(event) is not dict or len(event) != 1:
            # A torn line; what follows it cannot be trusted to refer to what it defined.
            dropped = 1
            continue
        (name, payload), = event.items()
        replay.feed(name, payload)
        target.write(b",\n" + body if kept else body)
        kept += 1
    if not kept:
        raise UsageError("%s holds no complete event (the program ended before anything "
                         "was written): nothing to repair" % trace_path)
    return kept, dropped


def _read_metadata(trace_dir):
    try:
        with open(os.path.join(trace_dir, "trace_metadata.json"), "rb") as handle:
            metadata = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return metadata if type(metadata) is dict else None


def _repaired_metadata(metadata, paths, events):
    """The provisional (or missing) metadata completed with what the trace tells."""
    repaired = dict(metadata or {})
    repaired.pop("incomplete", None)
    program = repaired.get("program") or (paths[0] if paths else "")
    repaired.setdefault("workdir", os.path.dirname(program) if os.path.isabs(program) else "")
    repaired["program"] = program
    repaired.setdefault("args", [])
    repaired.setdefault("recording_id", str(uuid.uuid4()))
    repaired["events"] = events
    repaired["repaired"] = True
    return repaired


if __name__ == "__main__":
    from .cli import repair_main
    repair_main(sys.argv[1:])
