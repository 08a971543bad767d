"""The C walk, encoder and writer loop (native/speedups.c) against their references in Python.

The walk (probes._walk_python) must append the same ids and names for every value, fill
``seen`` alike and give the same result: a fingerprint decides whether a value is encoded
again, so a difference would show a stale value (or waste time).  The encoder must give the
bytes of orjson.dumps(ValueEncoder.encode(value, 0, seen)), the same ``seen`` (what a change
to would change the record) and intern the same types in the same order.  The values are
the kinds both know, the ones they leave to Python, and random graphs of them, under the
default limits and small ones.
"""

import collections
import collections.abc
import enum
import math
import random
import sys
import types

import orjson
import pytest

from ctinstrument import probes, values, writer

speedups = pytest.importorskip(
    "_ctinstrument_speedups",
    reason="the C part is not built (no compiler when ctinstrument was installed)")


class Plain:
    def __init__(self, **fields):
        self.__dict__.update(fields)

    def method(self):
        return self


class Slotted:
    __slots__ = ("a",)

    def __init__(self, a):
        self.a = a


class NoDict:
    __slots__ = ()


class Colour(enum.Enum):
    RED = 1


class Tagged(list):
    def __iter__(self):
        raise AssertionError("the walk must not iterate through a subclass")


class Table(dict):
    def __hash__(self):
        raise AssertionError("the walk must not hash a dict subclass")


class Bag(set):
    pass


Point = collections.namedtuple("Point", "x y")


Login = collections.namedtuple("Login", "user password")


class Renamed(collections.namedtuple("Renamed", "a b")):
    _fields = ("a",)  # no longer the items: shown as a plain tuple


Deep = collections.namedtuple("Deep", "a")


def _named_tuples():
    """Named tuples: the first of a class made by Python, the others by C from its type
    (once one was shown in full: the first Deep is at the depth limit, a Raw)."""
    inner = Point(2, 3)
    return [[[[Deep(1)]]], Deep(2), Point(1, 2), Point(inner, [inner, inner]), [Point(i, Point(i, i)) for i in range(8)],
            Login("u", "hunter2"), Login("v", [1]), Renamed(1, 2), Renamed(3, Point(4, 5)),
            (Point(1, 1), (Point(2, 2), (Point(3, 3), (Point(4, 4),))))]


def _raw_values():
    """Values shown as a Raw naming them, with the names that make it hard."""
    quoted = lambda: 0  # noqa: E731
    quoted.__qualname__ = 'say "hi" \\ \n'
    accented = lambda: 0  # noqa: E731
    accented.__qualname__ = "caf\u00e9"
    unnamed = types.ModuleType("unnamed")
    del unnamed.__name__
    accented_module = types.ModuleType("m\u00f6d")
    made = {}
    exec("Homeless = type('Homeless', (), {})", made)  # no __name__: no __module__ either
    homeless = made["Homeless"]
    mainless = type("Mainless", (), {"__module__": None})
    numbered = type("Numbered", (), {"__module__": 5})
    return [quoted, accented, unnamed, accented_module, homeless, mainless, numbered,
            collections.abc.Sequence, enum.Enum, Colour, types.MethodType(len, 1),
            types.MethodType(quoted, 1), dict.fromkeys, "".join, object.__new__, print,
            {"a": [quoted, homeless, unnamed]}]


def _builtin_values():
    own = Plain(a=1)
    odd = Plain(b=2)
    odd.__dict__[3] = "not named by a str"
    cyclic = [1, 2]
    cyclic.append(cyclic)
    shared = {"k": "v"}
    ours = probes.new_thread_stack(7)  # a list subclass of ctinstrument: not shown as items
    ours.append(1)
    return [
        0, -1, 2 ** 70, 1.5, math.nan, "text", "x" * 5000, b"bytes", True, None, 3j,
        range(4), [], (), {}, set(), frozenset({1, 2}), [1, "a", None], (1, (2, (3, (4,)))),
        {"a": 1, "b": [1, 2]}, {1: "one", (2, 3): "pair"}, {Plain(): 1}, list(range(300)),
        {i: i for i in range(250)}, [[i] for i in range(120)], cyclic, [shared, shared],
        [[[[[1]]]]], own, odd, Plain(x=own, y=[own, own]), Slotted(1), NoDict(), object(),
        Colour.RED, [Colour.RED], Tagged([1, 2, [3]]), Table(a=[1]), Bag({1, 2}),
        collections.deque([1, [2]]), Point(1, [2]), Point([1], Point(2, 3)), len, own.method,
        Plain.method, [].append, math, ValueError("boom", 1), ValueError, int, Plain,
        lambda: 0, [len, math, Plain.method], {"f": _builtin_values}, bytearray(b"ab"),
        slice(1, 2), types.SimpleNamespace(a=1), sys.version_info, ours, [ours, Tagged()],
    ] + _raw_values() + _named_tuples()


def _random_value(rng, depth=0):
    roll = rng.random()
    if depth > 4 or roll < 0.3:
        return rng.choice([rng.randrange(-5, 5), rng.random(), "s%d" % rng.randrange(3), None,
                           True, b"b", len, Colour.RED, Slotted(1), NoDict()])
    width = rng.randrange(0, 8)
    items = [_random_value(rng, depth + 1) for _ in range(width)]
    kinds = [list, tuple, "dict", "object", "set", "named", "deque", "subclass"]
    kind = rng.choice(kinds)
    if kind == "dict":
        return {("k%d" % i if rng.random() < 0.9 else i): item for i, item in enumerate(items)}
    if kind == "object":
        return Plain(**{"f%d" % i: item for i, item in enumerate(items)})
    if kind == "set":
        return {i for i in range(width)}
    if kind == "named":
        return Point(items[0] if items else 0, items)
    if kind == "deque":
        return collections.deque(items)
    if kind == "subclass":
        return Tagged(items)
    return kind(items)


def _graph(rng):
    """Random values that share and cycle: some nodes are reused elsewhere."""
    pool = [_random_value(rng) for _ in range(6)]
    for node in pool:
        if isinstance(node, list) and pool:
            node.append(rng.choice(pool))
        elif isinstance(node, Plain):
            node.back = rng.choice(pool)
    return pool


def _walks(value):
    results = []
    for walk in (probes._walk_python, speedups.walk):
        ids, held, seen = [], [], {probes._BUDGET: probes._nodes}
        result = walk(value, 0, ids, held, seen)
        results.append((result, ids, seen, sorted(map(id, held))))
    return results


class TypeLog:
    """An intern_type for a ValueEncoder: ids in order of first use, every call logged."""

    def __init__(self):
        self.ids = {}
        self.calls = []

    def __call__(self, kind, name, fields=None):
        self.calls.append((kind, name, fields))
        return self.ids.setdefault((kind, name, fields), len(self.ids) + 1)


def _encoder(limits):
    log = TypeLog()
    encoder = values.ValueEncoder(log, limits, is_secret=lambda name: name == "password")
    return encoder, log


@pytest.fixture(params=[(3, 100, 1000, values.NODES), (2, 3, 4, 5), (1, 1, 1, 1)],
                ids=["default-limits", "small-limits", "tiny-limits"])
def limits(request, monkeypatch):
    depth, items, string, nodes = request.param
    monkeypatch.setattr(probes, "_depth", depth)
    monkeypatch.setattr(probes, "_items", items)
    monkeypatch.setattr(probes, "_nodes", nodes)
    native, native_log = _encoder(values.Limits(depth, items, string, nodes))
    python, python_log = _encoder(values.Limits(depth, items, string, nodes))
    probes._choose_native(native)
    yield python, python_log, native, native_log
    monkeypatch.undo()
    probes._choose_native(values.ValueEncoder(TypeLog()))


def test_the_c_walk_and_encoder_are_the_ones_used(limits):
    assert probes._walk is speedups.walk
    assert probes._matches is speedups.same
    assert probes._encode_json is speedups.encode


def _matches(value, ids):
    """(Python's, C's) answer to whether the walk of ``value`` appends exactly ``ids``."""
    return tuple(match(value, 0, ids, {probes._BUDGET: probes._nodes})
                 for match in (probes._matches_python, speedups.same))


def _fingerprints_that_differ(ids):
    """``ids`` changed at each place: one item more, one less, an item another int or
    name, a name where an int was and an int where a name was."""
    yield ids + [0]
    for at, item in enumerate(ids):
        yield ids[:at] + ids[at + 1:]
        if type(item) is int:
            replacements = (item + 1, str(item))
        else:
            replacements = (item + "?", len(item))
        for replacement in replacements:
            yield ids[:at] + [replacement] + ids[at + 1:]


def test_matching_a_fingerprint_in_c_answers_as_in_python(limits):
    for value in _builtin_values() + [item for _ in range(30)
                                      for item in _graph(random.Random(_))]:
        (described, ids, _seen, _held), _native = _walks(value)
        assert _matches(value, ids) == (described, described), value
        for other in _fingerprints_that_differ(ids):
            assert _matches(value, other) == (False, False), (value, other)


def test_every_kind_of_value_gives_the_same_walk(limits):
    for value in _builtin_values():
        python, native = _walks(value)
        assert python == native, value


def test_random_graphs_give_the_same_walk(limits):
    rng = random.Random(1)
    for _ in range(300):
        for value in _graph(rng):
            python, native = _walks(value)
            assert python == native, value


def test_a_change_changes_both_fingerprints_alike(limits):
    rng = random.Random(2)
    for _ in range(200):
        value = Plain(items=[rng.randrange(3) for _ in range(3)], inner=Plain(n=1))
        before = _walks(value)
        if rng.random() < 0.5:
            value.items[rng.randrange(3)] = rng.randrange(3)
        else:
            value.inner.n = rng.randrange(2)
        after = _walks(value)
        assert (before[0][1] == after[0][1]) == (before[1][1] == after[1][1])
        assert after[0] == after[1]


def test_a_value_walked_in_c_runs_no_code_of_the_program():
    for value in (Tagged([1, Tagged([2])]), Table(a=Table(b=1)), [Tagged(), Table()]):
        result, ids, _seen, _held = _walks(value)[1]
        assert result is True and ids


def _encodings(value, limits):
    python, python_log, native, native_log = limits
    python_seen, native_seen = {}, {}
    expected = orjson.dumps(python.encode(value, 0, python_seen))
    got = speedups.encode(value, native_seen)
    return ((expected, python_seen, python_log.calls, python.redactions),
            (got, native_seen, native_log.calls, native.redactions))


class Spy:
    """Records every method of it the encoders or the walk run (they must run none)."""
    ran = []

    def __repr__(self):
        Spy.ran.append("__repr__")
        return "spy"

    def __str__(self):
        Spy.ran.append("__str__")
        return "spy"

    def __hash__(self):
        Spy.ran.append("__hash__")
        return 1

    def __eq__(self, other):
        Spy.ran.append("__eq__")
        return self is other


class SpyText(str):
    def __eq__(self, other):
        Spy.ran.append("__eq__")
        return str.__eq__(self, other)

    def __radd__(self, other):
        Spy.ran.append("__radd__")
        return other + str(self)

    __hash__ = str.__hash__


def _values_with_program_code():
    module = types.ModuleType("named")
    module.__name__ = Spy()
    renamed = type("Renamed", (), {})
    renamed.__module__ = SpyText("mod")
    renamed.__qualname__ = SpyText("Renamed")
    keyed = Plain(a=1)
    keyed.__dict__[Spy()] = 2
    function = lambda: 0  # noqa: E731
    function.__qualname__ = SpyText("f")
    return [slice(Spy(), 2, None), [slice(1, Spy())], module, renamed(), renamed, keyed,
            function, [keyed, module]]


def test_the_encoders_run_no_code_of_the_program(limits):
    """Parts of a slice, a module's ``__name__``, a class's ``__module__``/``__qualname__``,
    the non-str keys of an instance dict: shown without running their methods, alike."""
    for value in _values_with_program_code():
        Spy.ran.clear()
        python, native = _encodings(value, limits)
        assert python == native, value
        _walks(value)
        assert Spy.ran == [], value
    shown = ("slice(<%s>, 2, None)" % values.type_name(Spy)).encode()
    assert shown in _encodings(slice(Spy(), 2, None), limits)[0][0]


def test_a_struct_shows_the_fields_its_type_names(limits):
    """A finaliser run by the collector while an object is encoded (here: in the Python
    call that makes its Struct type, after its field names were read) changes its fields:
    the Struct's values are still those of the field names its type gives."""
    import gc

    class Junk:
        def __del__(self):
            fields = victim.__dict__
            if "a" in fields:
                del fields["a"]
                fields["c"] = [3]

    python, python_log, native, native_log = limits
    by_name = {"a": 1, "b": 2, "c": 3}
    changed = 0
    for threshold in range(1, 17):  # the collections fall at different points
        for encode, log in ((lambda v: orjson.dumps(python.encode(v, 0, {})), python_log),
                            (lambda v: speedups.encode(v, {}), native_log)):
            fresh = type("Fresh", (Plain,), {})  # no Struct type yet: made in Python
            victim = fresh(a=[1], b=[2])
            gc.collect()
            junk = Junk()
            junk.cycle = junk
            del junk
            gc.set_threshold(threshold)
            try:
                record = orjson.loads(encode(victim))
            finally:
                gc.set_threshold(700)
                gc.collect()
            changed += "c" in victim.__dict__
            if record["kind"] != "Struct":
                continue
            fields = {id_: key for key, id_ in log.ids.items()}[record["type_id"]][2]
            shown = [value["elements"][0]["i"] if value["kind"] == "Sequence" else None
                     for value in record["field_values"]]
            assert len(fields) == len(shown)
            assert all(value in (None, by_name[name]) for name, value in zip(fields, shown)), \
                (threshold, encode, fields, shown)
    assert changed  # the finaliser did run during some of the encodings


def _scalars():
    text = "".join(map(chr, range(128)))
    return [
        None, True, False, 0, 1, -1, values.I64_MAX, values.I64_MIN, values.I64_MAX + 1,
        values.I64_MIN - 1, 2 ** 200, -0.0, 0.1, 1e300, 1e-7, 123456789.0, math.inf, -math.inf,
        math.nan, "", text, text * 20, "caf\u00e9", "\ud800 lone", "\u2028", "x" * 999,
        "x" * 1000, "x" * 1001, Colour.RED, True.__class__(1), IntLike(5), TextLike("t"),
    ]


class IntLike(int):
    pass


class TextLike(str):
    pass


def test_scalars_encode_alike(limits):
    for value in _scalars():
        python, native = _encodings(value, limits)
        assert python == native, value


def test_every_kind_of_value_encodes_alike(limits):
    secret = Plain(password="hunter2", user="u")
    for value in _builtin_values() + [secret, {"password": 1, "b": 2}, [{"password": [1]}],
                                      {"x" * 2000: 1}, [IntLike(1), TextLike("s")],
                                      list(range(5000)), dict.fromkeys(range(1234567))]:
        python, native = _encodings(value, limits)
        assert python == native, value


def test_random_graphs_encode_alike(limits):
    rng = random.Random(3)
    for _ in range(300):
        for value in _graph(rng):
            python, native = _encodings(value, limits)
            assert python == native, value


def test_what_the_c_encoder_cannot_finish_is_encoded_by_python(monkeypatch):
    """Nesting deeper than the interpreter allows (limits that permit it): the C encoder
    stops at the recursion limit as the Python one does, and gives the Python record."""
    unbounded = values.Limits(depth=10 ** 6, items=10, string=10, nodes=10 ** 7)
    monkeypatch.setattr(probes, "_depth", unbounded.depth)
    monkeypatch.setattr(probes, "_items", unbounded.items)
    monkeypatch.setattr(probes, "_nodes", unbounded.nodes)
    native, native_log = _encoder(unbounded)
    python, python_log = _encoder(unbounded)
    probes._choose_native(native)
    try:
        deep = []
        for _ in range(sys.getrecursionlimit() * 2):
            deep = [deep]
        expected, got = _encodings(deep, (python, python_log, native, native_log))
        assert b"too deep to capture" in expected[0]
        # ``seen`` holds what was walked before the error, which depends on the stack depth
        # the encoder started at: only the record and the types are the same.
        assert (expected[0], expected[2]) == (got[0], got[2])
        assert got[1]
    finally:
        monkeypatch.undo()
        probes._choose_native(values.ValueEncoder(TypeLog()))


def _random_records(rng, count):
    """(thread, event) records as the probes and the recorder append them: pre-encoded
    Steps, Calls and Returns (bytes, alone or in tuples), dict events, on a few threads."""
    step = b'{"Step":{"path_id":0,"line":3}}'
    call = probes._CALL % (2, probes._ARGUMENT % (1, b'{"kind":"None","type_id":0}'))
    returned = probes._RETURN % b'{"kind":"None","type_id":0}'
    drop = probes._DROP_VARIABLES % b"1,2"
    choices = [
        lambda: step, lambda: call, lambda: returned, lambda: returned,
        lambda: (step, call), lambda: (step, drop, call), lambda: (step,),
        lambda: (step, {"Event": {"kind": 0, "metadata": "", "content": "x"}}),
        lambda: {"Call": {"function_id": 0, "args": []}},
        lambda: {"Return": {"return_value": {"kind": "None", "type_id": 0}}},
        lambda: {"ThreadExit": {"thread_id": 2}},
        lambda: {"Event": {"kind": 0, "metadata": "", "content": "y"}},
    ]
    threads = [1, 1, 1, 1, 2, 3, None, 1.0]  # a float: not a thread number, left to Python
    records = [(rng.choice(threads), rng.choice(choices)()) for _ in range(count)]
    if records and rng.random() < 0.1:  # a list, not a pair: left to Python too
        records[rng.randrange(len(records))] = [1, step]
    return records


def test_the_c_join_takes_what_the_python_one_takes():
    """Record for record: the same lines, open calls, dropped Returns and stopping index."""
    rng = random.Random(9)
    for _ in range(2000):
        records = _random_records(rng, rng.randrange(0, 12))
        start = rng.randrange(-1, 3)
        last_thread = rng.choice([1, 2, None, 1.0])
        calls = {thread: rng.randrange(0, 3) for thread in rng.sample([1, 2, 3], 2)}
        results = []
        for join in (writer.join_records, speedups.join):
            lines, open_calls = [b"before"], dict(calls)
            stop = join(records, start, lines, open_calls, 1, last_thread)
            results.append((stop, lines, open_calls))
        assert results[0] == results[1], (records, start, last_thread, calls)
        assert results[0][0] >= min(max(start, 0), len(records))


def test_the_c_join_runs_no_code_of_the_records():
    """A thread that is not an int (whose ``__eq__`` or ``__hash__`` could change the
    records) stops the join before it is compared or hashed."""
    class Hostile(int):
        def __eq__(self, other):
            raise AssertionError("compared")

        __hash__ = int.__hash__

    step = b'{"Step":{"path_id":0,"line":3}}'
    records = [(1, step), (Hostile(1), step)]
    for join in (writer.join_records, speedups.join):
        lines = []
        assert join(records, 0, lines, {}, 1, 1) == 1
        assert lines == [step]
        assert join(records, 0, [], {}, 1, Hostile(1)) == 0


def test_the_writer_writes_the_same_trace_with_either_join(tmp_path, monkeypatch):
    rng = random.Random(10)
    batches = [[record for record in _random_records(rng, rng.randrange(1, 40))
                if type(record) is tuple and type(record[0]) is not float]
               for _ in range(200)]
    traces = []
    for join in (writer.join_records, speedups.join):
        monkeypatch.setattr(writer, "_join", join)
        out = tmp_path / join.__module__
        out.mkdir()
        trace = writer.TraceWriter(str(out))
        trace.lost_return = probes._RETURN % b'{"kind":"None","type_id":0}'
        for batch in batches:
            trace.write(batch)
        trace.close({}, [], {"Return": {"return_value": {"kind": "None", "type_id": 0}}})
        traces.append((out / "trace.json").read_bytes())
    assert traces[0] == traces[1]
    events = orjson.loads(traces[0])
    # Balanced whatever the batches held: every Return ends a Call of its thread.
    assert sum("Call" in e for e in events) == sum("Return" in e for e in events)
