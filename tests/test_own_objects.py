"""ctinstrument's own objects never reach the trace's values: the capture proxies a program's
objects hold show as the real streams, anything else of ours as a short Raw, and nothing of
the recorder's state (trace directory, recording id, buffers) appears in a value."""

import json

from tracetools import assert_conformant, load_events, record, write_program

THREADED = '''
import sys, threading
import ctinstrument

def work(n):
    out = sys.stdout
    err = sys.stderr
    print("in thread", n)
    return n * 2

threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
first = threads[0]
stream = first._stderr
recording = ctinstrument.is_recording
print("done", recording())
'''


def _strings(value):
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_threaded_program_trace_holds_nothing_of_ctinstrument(tmp_path):
    script = write_program(tmp_path, THREADED)
    out = tmp_path / "trace"
    result = record(script, out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = load_events(out)
    types = [e["Type"]["lang_type"] for e in events if "Type" in e]
    assert "threading.Thread" in types
    assert not [name for name in types if "ctinstrument" in name], types
    metadata = json.loads((out / "trace_metadata.json").read_text())
    secrets = {metadata["recording_id"], str(out)}
    values = [e for e in events if "Value" in e or "Call" in e or "Return" in e
              or "AssignCell" in e]
    assert len(values) > 20
    leaked = [text for event in values for text in _strings(event)
              if any(secret in text for secret in secrets)]
    assert leaked == []
    # The proxy in Thread._stderr shows as the stream it forwards to.
    stream_type = "_io.TextIOWrapper"
    assert stream_type in types
    assert_conformant(out)


def test_encoder_shows_own_objects_as_raw():
    from ctinstrument.values import ValueEncoder
    from ctinstrument.selection import Selection
    types = []

    def intern_type(kind, lang_type, fields=None):
        types.append(lang_type)
        return len(types) - 1

    encoder = ValueEncoder(intern_type)
    selection = Selection([], [], None)
    value = encoder.encode({"selection": selection, "items": [selection]})
    inner = value["elements"][0]["elements"][1]
    assert inner["kind"] == "Raw"
    assert inner["r"] == "<ctinstrument.selection.Selection object>"
    assert encoder.encode(selection)["kind"] == "Raw"
