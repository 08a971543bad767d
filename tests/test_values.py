"""Variable values and assignment history in the trace (store probes).

Each test records a small program whose interesting lines carry a marker comment (``# [A]``),
then reads back, for one function (or the module body), the steps of its frames as
(line, {variable: decoded value}) and the assignment history (VariableCell / AssignCell /
DropVariable).  A Step means "this line is about to run", so the effect of line [A] is seen at
the next step of the same frame (``after``).  Every program must behave exactly as without the
recorder and every trace must pass the strict conformance checker.
"""

import base64
import json
import re
import sys
import textwrap
from dataclasses import dataclass, field

from tracetools import (ENTRY_GAP, assert_conformant, kind, load_events, load_paths, record,
                        run_plain, shown_locals)

# -- decoding values --------------------------------------------------------------------------

@dataclass(frozen=True)
class Raw:
    """A ``Raw`` value record (opaque: its text only)."""
    r: str


@dataclass(frozen=True)
class Ref:
    """A ``Reference`` record (a container met again: cycle or shared reference)."""
    dereferenced: object


@dataclass(frozen=True)
class Variant:
    discriminator: str
    contents: object


@dataclass(frozen=True)
class Err:
    msg: str


class Struct(dict):
    """A decoded ``Struct``: a dict of its fields that also knows its type name."""

    def __init__(self, type_name, fields):
        super().__init__(fields)
        self.type_name = type_name

    def __repr__(self):
        return "%s(%s)" % (self.type_name, dict.__repr__(self))


class Float(float):
    """A decoded ``Float`` that keeps the exact text of the record (``"-0.0"``, ``"NaN"``)."""

    def __new__(cls, text):
        value = super().__new__(cls, text)
        value.text = text
        return value


def _hashable(value):
    try:
        hash(value)
        return True
    except TypeError:
        return False


class Decoder:
    """Decodes value records with the ``Type`` table of the trace."""

    def __init__(self, types):
        self.types = types  # type id -> Type payload

    def lang_type(self, value):
        return self.types[value["type_id"]]["lang_type"]

    def __call__(self, value):
        k = value["kind"]
        if k == "None":
            return None
        if k == "Int":
            return value["i"]
        if k == "BigInt":
            magnitude = int.from_bytes(base64.b64decode(value["b"]), "big")
            return -magnitude if value["negative"] else magnitude
        if k == "Float":
            return Float(value["f"])
        if k == "Bool":
            return value["b"]
        if k == "String":
            return value["text"]
        if k == "Raw":
            return Raw(value["r"])
        if k == "Error":
            return Err(value["msg"])
        if k == "Reference":
            return Ref(self(value["dereferenced"]))
        if k == "Variant":
            return Variant(value["discriminator"], self(value["contents"]))
        if k == "Tuple":
            return tuple(self(e) for e in value["elements"])
        if k == "Struct":
            info = self.types[value["type_id"]]
            names = [f["name"] for f in info["specific_info"]["fields"]]
            assert len(names) == len(value["field_values"]), value
            return Struct(info["lang_type"],
                          zip(names, (self(v) for v in value["field_values"])))
        if k == "Sequence":
            items = [self(e) for e in value["elements"]]
            name = self.lang_type(value)
            if name == "dict" and all(type(i) is tuple and len(i) == 2 and _hashable(i[0])
                                      for i in items):
                return dict(items)
            if name in ("set", "frozenset") and all(_hashable(i) for i in items):
                return set(items)
            return items
        raise AssertionError("unknown value kind %r" % k)


# -- reading frames out of a trace ------------------------------------------------------------

@dataclass
class Step:
    line: int
    values: dict = field(default_factory=dict)


@dataclass
class Activation:
    """One Call of a function (a generator resume is a new activation)."""
    function: str
    args: dict
    steps: list = field(default_factory=list)
    # (line of the step it is written at, kind, variable name, decoded value): kind is
    # "assign" (an AssignCell of a place a variable of this activation is bound to, written
    # while the activation runs, by it or by a callee, or a VariableCell that moves a
    # variable bound before in this activation to a place already holding a value) or
    # "drop" (DropVariable).
    history: list = field(default_factory=list)
    returned: object = None
    place_of: dict = field(default_factory=dict)  # variable name -> its place


class Trace:
    """The activations of a recorded run, with the values CodeTracer shows at each step.

    A Step followed (ENTRY_GAP aside) by a Call is the callee's entry step and is left out.
    The values of a step are what ``ct_locals.py`` (the port of CodeTracer's backend, in
    ../shared) computes for it, decoded.  The history of an activation lists the
    ``AssignCell`` events of the places its variables are bound to, the bindings that move
    a variable to another place that already holds a value (a record shared by content;
    a first binding to such a place is not listed), and its
    ``DropVariable`` events, at the step they are written at (where the change is first
    shown: the step after the line that made it).
    """

    def __init__(self, events, paths):
        self.events = events
        self.names = []
        self.functions = []
        self.types = []
        self.decode = Decoder(self.types)
        self.activations = []
        stacks = {}
        line = None  # of the latest Step
        thread = 1
        by_index = {}  # index among all Steps -> Step of an activation
        place_values = {}  # place -> its last AssignCell's value, decoded
        count = 0
        for index, event in enumerate(events):
            name = kind(event)
            payload = event[name] if isinstance(event, dict) else None
            if name == "VariableName":
                self.names.append(payload)
            elif name == "Function":
                self.functions.append(payload["name"])
            elif name == "Type":
                self.types.append(payload)
            elif name in ("ThreadStart", "ThreadSwitch"):
                thread = payload
            elif name == "Call":
                args = {self.names[a["variable_id"]]: self.decode(a["value"])
                        for a in payload["args"]}
                activation = Activation(self.functions[payload["function_id"]], args)
                self.activations.append(activation)
                stacks.setdefault(thread, []).append(activation)
            elif name == "Return":
                stack = stacks[thread]
                stack.pop().returned = self.decode(payload["return_value"])
            elif name == "Step":
                line = payload["line"]
                count += 1
                following = index + 1
                while following < len(events) and kind(events[following]) in ENTRY_GAP:
                    following += 1
                if following < len(events) and kind(events[following]) == "Call":
                    continue  # entry step: belongs to the callee
                step = Step(payload["line"])
                stacks[thread][-1].steps.append(step)
                by_index[count - 1] = step
            elif name == "VariableCell":
                activation = stacks[thread][-1]
                variable = self.names[payload["variable_id"]]
                place = payload["place"]
                before = activation.place_of.get(variable)
                if before != place:  # not a binding written again after a call
                    activation.place_of[variable] = place
                    if before is not None and place in place_values:
                        activation.history.append(
                            (line, "assign", variable, place_values[place]))
            elif name == "AssignCell":
                value = place_values[payload["place"]] = self.decode(payload["new_value"])
                for activation in stacks[thread]:
                    for variable in sorted(name for name, place in activation.place_of.items()
                                           if place == payload["place"]):
                        activation.history.append((line, "assign", variable, value))
            elif name == "DropVariable":
                stacks[thread][-1].history.append((line, "drop", self.names[payload], None))
        for shown in shown_locals(events, paths):
            step = by_index.get(shown["step"])
            if step is not None:
                step.values = {name: self.decode(value)
                               for name, value in shown["locals"].items()}

    def calls(self, function):
        """The activations of ``function`` (a qualified name, ``<__main__>`` for the script)."""
        found = [a for a in self.activations if a.function == function]
        assert found, "no call of %r in %s" % (function, sorted(set(self.functions)))
        return found

    def steps(self, function, call=None):
        """(line, values) per step of ``function``: of its ``call``-th activation, or of all
        its activations in order (a generator's resumes continue its steps)."""
        chosen = self.calls(function)
        if call is not None:
            chosen = [chosen[call]]
        return [(s.line, s.values) for a in chosen for s in a.steps]

    def history(self, function, variable=None, call=None):
        """Assignment history of ``function`` as (line, "assign"/"drop", name, value)."""
        chosen = self.calls(function)
        if call is not None:
            chosen = [chosen[call]]
        return [h for a in chosen for h in a.history if variable in (None, h[2])]

    def assigned(self, function, variable, call=None):
        """The values ``variable`` was assigned in ``function``, in order."""
        return [h[3] for h in self.history(function, variable, call) if h[1] == "assign"]


def marks(source):
    """{tag: line} for every ``# [tag]`` marker comment of ``source``."""
    found = {}
    for number, text in enumerate(source.splitlines(), 1):
        for tag in re.findall(r"#.*?\[(\w+)\]", text):
            assert tag not in found, "marker %s used twice" % tag
            found[tag] = number
    return found


def at(steps, line, occurrence=0):
    """The values at the ``occurrence``-th step of ``line`` (before it runs)."""
    indices = [i for i, (l, _) in enumerate(steps) if l == line]
    assert len(indices) > occurrence, "line %d stepped %d times: %s" % (
        line, len(indices), [l for l, _ in steps])
    return steps[indices[occurrence]][1]


def after(steps, line, occurrence=0):
    """The values at the step that follows the ``occurrence``-th step of ``line``."""
    indices = [i for i, (l, _) in enumerate(steps) if l == line]
    assert len(indices) > occurrence, "line %d stepped %d times: %s" % (
        line, len(indices), [l for l, _ in steps])
    index = indices[occurrence] + 1
    assert index < len(steps), "no step after line %d" % line
    return steps[index][1]


def line_after(steps, line, occurrence=0):
    """The line of the step that follows the ``occurrence``-th step of ``line``: where the
    history of that line is written (its changes are first true there)."""
    indices = [i for i, (l, _) in enumerate(steps) if l == line]
    return steps[indices[occurrence] + 1][0]


def every(steps, line):
    """The values at each step of ``line``."""
    return [values for l, values in steps if l == line]


class Run:
    def __init__(self, source, trace_dir, result, plain):
        self.source = source
        self.marks = marks(source)
        self.trace_dir = trace_dir
        self.result = result
        self.plain = plain
        self.events = load_events(trace_dir)
        self.trace = Trace(self.events, load_paths(trace_dir))

    def __getitem__(self, tag):
        return self.marks[tag]

    @property
    def metadata(self):
        with open(self.trace_dir / "trace_metadata.json") as handle:
            return json.load(handle)

    @property
    def text(self):
        return (self.trace_dir / "trace.json").read_text(encoding="utf-8")


def run(tmp_path, source, options=(), name="prog.py", trace="trace"):
    """Record ``source`` (dedented) as a script; check it behaves as without the recorder and
    that the trace is conformant; return a ``Run``."""
    source = textwrap.dedent(source).lstrip("\n")
    script = tmp_path / name
    script.write_text(source, encoding="utf-8")
    plain = run_plain(script, cwd=tmp_path)
    trace_dir = tmp_path / trace
    result = record(script, trace_dir, options=options, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == \
        (plain.returncode, plain.stdout, plain.stderr)
    assert_conformant(trace_dir)
    return Run(source, trace_dir, result, plain)


# -- simple stores -----------------------------------------------------------------------------

def test_augmented_assignment(tmp_path):
    r = run(tmp_path, """
        def f():
            x = 10          # [A]
            x += 5          # [B]
            x *= 2          # [C]
            s = "ab"
            s += "cd"       # [D]
            xs = [1]
            xs += [2]       # [E]
            return x
        f()
        """)
    steps = r.trace.steps("f")
    assert after(steps, r["A"])["x"] == 10
    assert after(steps, r["B"])["x"] == 15
    assert after(steps, r["C"])["x"] == 30
    assert at(steps, r["C"])["x"] == 15  # before [C] runs
    assert after(steps, r["D"])["s"] == "abcd"
    assert after(steps, r["E"])["xs"] == [1, 2]
    assert r.trace.assigned("f", "x") == [10, 15, 30]
    assert r.trace.assigned("f", "s") == ["ab", "abcd"]
    assert r.trace.assigned("f", "xs") == [[1], [1, 2]]
    # the history is at the step after the store's line, where the new value is first true
    assert [h[0] for h in r.trace.history("f", "x")] == [
        line_after(steps, r["A"]), line_after(steps, r["B"]), line_after(steps, r["C"])]


def test_chained_assignment(tmp_path):
    r = run(tmp_path, """
        def f():
            a = b = 5       # [A]
            p = q = []      # [B]
            p.append(1)     # [C]
            return a + b
        f()
        """)
    steps = r.trace.steps("f")
    values = after(steps, r["A"])
    assert (values["a"], values["b"]) == (5, 5)
    assert r.trace.assigned("f", "a") == [5]
    assert r.trace.assigned("f", "b") == [5]
    # one list under two names: a change through one name shows under both
    values = after(steps, r["C"])
    assert values["p"] == values["q"] == [1]


def test_tuple_swap_changes_both_on_one_line(tmp_path):
    r = run(tmp_path, """
        def fib():
            a, b = 0, 1             # [A]
            for _ in range(5):      # [L]
                a, b = b, a + b     # [B]
            x, y = "x", "y"
            x, y = y, x             # [S]
            return a
        fib()
        """)
    steps = r.trace.steps("fib")
    values = after(steps, r["A"])
    assert (values["a"], values["b"]) == (0, 1)
    pairs = [(v["a"], v["b"]) for v in
             (after(steps, r["B"], i) for i in range(5))]
    assert pairs == [(1, 1), (1, 2), (2, 3), (3, 5), (5, 8)]
    # a change is written only when the value changed: a = b = 1 after the first swap
    assert r.trace.assigned("fib", "a") == [0, 1, 2, 3, 5]
    assert r.trace.assigned("fib", "b") == [1, 2, 3, 5, 8]
    # both new values of one swap are written together, at the step after it
    history = [(h[0], h[2], h[3]) for h in r.trace.history("fib") if h[2] in "ab"]
    third = history.index((r["L"], "a", 2))
    assert (r["L"], "b", 3) in history[third - 1:third + 2]
    values = after(steps, r["S"])
    assert (values["x"], values["y"]) == ("y", "x")
    on_s = sorted((h[2], h[3]) for h in r.trace.history("fib")
                  if h[0] == line_after(steps, r["S"]))
    assert on_s == [("x", "y"), ("y", "x")]


def test_star_unpacking(tmp_path):
    r = run(tmp_path, """
        def f():
            first, *rest = [1, 2, 3, 4]      # [A]
            *init, last = "abc"              # [B]
            head, *mid, tail = range(5)      # [C]
            return first
        f()
        """)
    steps = r.trace.steps("f")
    values = after(steps, r["A"])
    assert (values["first"], values["rest"]) == (1, [2, 3, 4])
    values = after(steps, r["B"])
    assert (values["init"], values["last"]) == (["a", "b"], "c")
    values = after(steps, r["C"])
    assert (values["head"], values["mid"], values["tail"]) == (0, [1, 2, 3], 4)
    assert r.trace.assigned("f", "rest") == [[2, 3, 4]]
    assert r.trace.assigned("f", "mid") == [[1, 2, 3]]


def test_for_loop_targets(tmp_path):
    r = run(tmp_path, """
        def f():
            total = 0
            for i in [3, 5, 7]:             # [L]
                total += i                  # [A]
            for k, v in {"a": 1, "b": 2}.items():
                total += v                  # [K]
            return total                    # [R]
        f()
        for j in range(3):
            pass
        END = 1                             # [E]
        """)
    steps = r.trace.steps("f")
    assert [v["i"] for v in every(steps, r["A"])] == [3, 5, 7]
    assert [v["total"] for v in every(steps, r["A"])] == [0, 3, 8]
    assert [(v["k"], v["v"]) for v in every(steps, r["K"])] == [("a", 1), ("b", 2)]
    assert at(steps, r["R"])["total"] == 18
    # one AssignCell per iteration, at the step after the loop header's
    assert r.trace.assigned("f", "i") == [3, 5, 7]
    assert {h[0] for h in r.trace.history("f", "i")} == {r["A"]}
    assert r.trace.assigned("f", "k") == ["a", "b"]
    assert r.trace.assigned("f", "v") == [1, 2]
    assert r.trace.assigned("f", "total") == [0, 3, 8, 15, 16, 18]
    assert r.trace.assigned("<__main__>", "j") == [0, 1, 2]
    assert at(r.trace.steps("<__main__>"), r["E"])["j"] == 2


def test_with_as(tmp_path):
    r = run(tmp_path, """
        import contextlib

        class Resource:
            def __init__(self):
                self.opened = False
            def __enter__(self):
                self.opened = True
                return self
            def __exit__(self, *exc):
                self.opened = False

        def f():
            with Resource() as res:                      # [A]
                inside = res.opened                      # [B]
            with contextlib.nullcontext(42) as answer:   # [C]
                pass
            return res, answer                           # [R]
        f()
        """)
    steps = r.trace.steps("f")
    values = at(steps, r["B"])
    assert values["res"] == {"opened": True}
    assert values["res"].type_name == "__main__.Resource"
    values = at(steps, r["R"])
    assert values["res"] == {"opened": False}
    assert values["inside"] is True
    assert values["answer"] == 42
    assert r.trace.assigned("f", "answer") == [42]


def test_except_as_name_disappears_after_the_handler(tmp_path):
    r = run(tmp_path, """
        def f():
            try:
                raise ValueError("boom")
            except ValueError as err:
                seen = err                   # [A]
            done = 1                         # [B]
            return seen
        f()
        try:
            {}["missing"]
        except KeyError as problem:
            caught = 1                       # [M]
        END = 2                              # [E]
        """)
    steps = r.trace.steps("f")
    assert at(steps, r["A"])["err"] == Raw("ValueError('boom')")
    values = at(steps, r["B"])
    assert "err" not in values
    assert values["seen"] == Raw("ValueError('boom')")
    assert any(h[1] == "drop" and h[2] == "err" for h in r.trace.history("f"))
    module = r.trace.steps("<__main__>")
    assert at(module, r["M"])["problem"] == Raw("KeyError('missing')")
    assert "problem" not in at(module, r["E"])
    assert any(h[1] == "drop" and h[2] == "problem" for h in r.trace.history("<__main__>"))


def test_import_as_at_module_level(tmp_path):
    r = run(tmp_path, """
        import os.path as osp                # [A]
        import collections as col
        from json import dumps as to_json
        X = 1                                # [B]
        def f():
            import math as m
            return m.pi                      # [F]
        f()
        """)
    module = r.trace.steps("<__main__>")
    values = at(module, r["B"])
    # module objects are not shown in a module namespace, other imported names are
    assert "osp" not in values and "col" not in values
    assert values["to_json"] == Raw("<function dumps>")
    # ... nor bound (a binding would show them)
    assert r.trace.history("<__main__>", "osp") == r.trace.history("<__main__>", "col") == []
    # in a function frame, a module is a local like any other
    assert at(r.trace.steps("f"), r["F"])["m"] == Raw("<module math>")


def test_walrus_in_comprehension_and_while(tmp_path):
    r = run(tmp_path, """
        def f(data):
            ys = [y := v * 2 for v in data]         # [A]
            last = y                                # [B]
            n = 0
            while (chunk := data[n:n + 2]):         # [W]
                n += 2                              # [C]
            return ys, last, n                      # [R]
        f([1, 2, 3])
        """)
    steps = r.trace.steps("f")
    values = at(steps, r["B"])
    assert values["y"] == 6
    assert values["ys"] == [2, 4, 6]
    assert "v" not in values
    assert [v["chunk"] for v in every(steps, r["C"])] == [[1, 2], [3]]
    values = at(steps, r["R"])
    assert (values["chunk"], values["n"], values["last"]) == ([], 4, 6)
    assert r.trace.assigned("f", "chunk") == [[1, 2], [3], []]


def test_match_captures(tmp_path):
    r = run(tmp_path, """
        from dataclasses import dataclass

        @dataclass
        class Point:
            x: int
            y: int

        def f(subject):
            match subject:
                case Point(x=0, y=py):
                    kind = "on y axis"          # [P]
                case [first, *others]:
                    kind = "sequence"           # [S]
                case {"op": op, **extra}:
                    kind = "mapping"            # [M]
                case str() as text:
                    kind = "text"               # [T]
            return kind

        f(Point(0, 7))
        f([1, 2, 3])
        f({"op": "add", "x": 1})
        f("hi")
        """)
    values = at(r.trace.steps("f", call=0), r["P"])
    assert values["py"] == 7
    assert values["subject"] == {"x": 0, "y": 7}
    assert values["subject"].type_name == "__main__.Point"
    values = at(r.trace.steps("f", call=1), r["S"])
    assert (values["first"], values["others"]) == (1, [2, 3])
    values = at(r.trace.steps("f", call=2), r["M"])
    assert (values["op"], values["extra"]) == ("add", {"x": 1})
    values = at(r.trace.steps("f", call=3), r["T"])
    assert values["text"] == "hi"
    assert r.trace.assigned("f", "others", call=1) == [[2, 3]]


COMPREHENSIONS = """
    def f():
        x = "outer"
        squares = [x * x for x in range(4)]             # [A]
        kept = x                                        # [B]
        total = sum(x for x in range(3))
        table = {x: i for i, x in enumerate("ab")}      # [C]
        return x                                        # [R]
    f()
    x = "module"
    cubes = [x ** 3 for x in range(3)]                  # [M]
    END = x                                             # [E]
    """


def test_comprehension_variable_does_not_replace_the_outer_one(tmp_path):
    # 3.12+ inline list/dict/set comprehensions into the enclosing frame (PEP 709)
    r = run(tmp_path, COMPREHENSIONS)
    steps = r.trace.steps("f")
    values = at(steps, r["B"])
    assert values["x"] == "outer"
    assert values["squares"] == [0, 1, 4, 9]
    values = at(steps, r["R"])
    assert values["x"] == "outer"
    assert values["kept"] == "outer"
    assert values["total"] == 3
    assert values["table"] == {"a": 0, "b": 1}
    assert "i" not in values
    module = r.trace.steps("<__main__>")
    values = at(module, r["E"])
    assert values["x"] == "module"
    assert values["cubes"] == [0, 1, 8]
    assert "i" not in values


def test_history_of_a_variable_a_comprehension_borrows(tmp_path):
    r = run(tmp_path, COMPREHENSIONS)
    # The assignment history of f's x (its place) ends with the value x has after the
    # comprehensions.  Before 3.12 a comprehension is a frame of its own; from 3.12 on
    # (PEP 709) it runs inside f, whose locals show its x while it runs (f_locals at those
    # line events; test_locals_oracle.py checks every step against it).
    inlined = sys.version_info >= (3, 12)
    assert r.trace.assigned("f", "x") == (
        ["outer", 0, 1, 2, 3, "outer", "a", "b", "outer"] if inlined else ["outer"])
    assert r.trace.assigned("<__main__>", "x") == (
        ["module", 0, 1, 2, "module"] if inlined else ["module"])


def test_global_and_nonlocal_stores(tmp_path):
    r = run(tmp_path, """
        counter = 0
        def bump():
            global counter
            counter += 1          # [G]

        def outer():
            n = 1
            def inner():
                nonlocal n
                n += 10           # [I]
            inner()               # [C1]
            seen = n              # [S]
            inner()
            return n              # [R]

        bump()                    # [B1]
        bump()
        result = outer()          # [O]
        END = counter             # [E]
        """)
    module = r.trace.steps("<__main__>")
    assert after(module, r["B1"])["counter"] == 1
    assert at(module, r["O"])["counter"] == 2
    assert at(module, r["E"])["result"] == 21
    # a global is a variable of the module's frame: its changes are history there (at the
    # module's next step), not in the function that made them, which does not show it
    assert r.trace.assigned("<__main__>", "counter") == [0, 1, 2]
    assert r.trace.history("bump", "counter") == []
    inner = r.trace.steps("outer.<locals>.inner")
    assert [v["n"] for v in every(inner, r["I"])] == [1, 11]
    # inner's n is bound at each call's first step; its change shows in outer
    assert r.trace.assigned("outer.<locals>.inner", "n") == [1, 11]
    assert r.trace.assigned("outer", "n") == [1, 11, 21]
    # n is a cell: the outer frame sees the value the inner function stored
    steps = r.trace.steps("outer")
    assert at(steps, r["S"])["n"] == 11
    assert at(steps, r["R"])["n"] == 21
    assert at(steps, r["C1"])["n"] == 1


def test_cell_variables_show_their_live_value(tmp_path):
    # Cell variables (captured by a closure) are stored by the frame that owns them, or
    # by the closure, and read through the cell.
    r = run(tmp_path, """
        def outer(param):
            count = 0
            def bump():
                nonlocal count
                count += 1
            for _ in range(2):
                count += 1            # [L]
                bump()
            total = count             # [T]
            ys = [y := param * k      # [W]
                  for k in range(3)]
            return ys, y, total, bump  # [R]
        outer(5)
        """)
    steps = r.trace.steps("outer")
    assert [v["count"] for v in every(steps, r["L"])] == [0, 2]
    assert at(steps, r["T"])["count"] == 4
    values = at(steps, r["R"])
    assert (values["param"], values["count"], values["y"], values["ys"]) == (5, 4, 10, [0, 5, 10])


def test_del_of_a_local(tmp_path):
    r = run(tmp_path, """
        def f():
            tmp = [1, 2]
            keep = 3          # [A]
            del tmp           # [B]
            return keep       # [C]
        f()
        gone = "soon"
        del gone              # [D]
        END = 1               # [E]
        """)
    steps = r.trace.steps("f")
    assert at(steps, r["B"])["tmp"] == [1, 2]
    assert "tmp" not in at(steps, r["C"])
    assert at(steps, r["C"])["keep"] == 3
    # history is written at the step after the line that made it
    assert [(h[0], h[1]) for h in r.trace.history("f", "tmp")] == \
        [(r["A"], "assign"), (r["C"], "drop")]
    module = r.trace.steps("<__main__>")
    assert at(module, r["D"])["gone"] == "soon"
    assert "gone" not in at(module, r["E"])
    assert r.trace.history("<__main__>", "gone")[-1][:2] == (r["E"], "drop")


def test_mutation_in_place(tmp_path):
    r = run(tmp_path, """
        class Acc:
            def __init__(self):
                self.total = 0
            def add(self):
                self.total += 1
                return self.total

        def f():
            xs = []
            xs.append(1)                  # [A]
            xs.append(2)
            d = {}
            d["k"] = "v"                  # [D]
            acc = Acc()
            acc.add()                     # [ADD]
            acc.total = 5                 # [T]
            del d["k"]                    # [X]
            return xs                     # [R]
        f()
        table = {}
        table["m"] = 1                    # [M]
        END = 1
        """)
    steps = r.trace.steps("f")
    assert at(steps, r["A"])["xs"] == []
    assert after(steps, r["A"])["xs"] == [1]
    assert after(steps, r["D"])["d"] == {"k": "v"}
    assert after(steps, r["ADD"])["acc"] == {"total": 1}
    assert after(steps, r["T"])["acc"] == {"total": 5}
    assert at(steps, r["R"])["xs"] == [1, 2]
    assert at(steps, r["R"])["d"] == {}
    # attribute and item stores and deletes, and a method changing its object: an
    # AssignCell of the variable holding the object, with the new content, at the step
    # after the line that changed it
    assert r.trace.assigned("f", "d") == [{}, {"k": "v"}, {}]
    assert [h[0] for h in r.trace.history("f", "d")] == [r["D"], r["D"] + 1, r["R"]]
    assert r.trace.assigned("f", "acc") == [{"total": 0}, {"total": 1}, {"total": 5}]
    assert r.trace.assigned("<__main__>", "table") == [{}, {"m": 1}]
    assert after(r.trace.steps("<__main__>"), r["M"])["table"] == {"m": 1}


def test_mutation_through_a_parameter_or_free_variable_is_history(tmp_path):
    # The frame never assigned these names (parameters, a closure's free variable), yet an
    # attribute or item store through them changes the object they hold.
    r = run(tmp_path, """
        class Acc:
            def __init__(self):
                self.total = 0            # [I]
            def add(self):
                self.total += 1           # [S]
                return self.total         # [S2]

        def put(d, key):
            d[key] = "v"                  # [P]
            return d

        def outer():
            shared = {}
            def fill():
                shared["a"] = 1           # [F]
            fill()
            return shared

        Acc().add()
        put({}, "k")
        outer()
        """)
    # A parameter is bound at the call's first step (with its value, unless its object
    # already has a place); a change through it is written at the frame's next step.  A
    # change on a frame's last line is shown by the frames that run next (the caller's
    # variable holding the same object).
    assert at(r.trace.steps("Acc.add"), r["S2"])["self"] == {"total": 1}
    assert r.trace.history("Acc.add", "self") == [
        (r["S"], "assign", "self", {"total": 0}), (r["S2"], "assign", "self", {"total": 1})]
    assert r.trace.history("Acc.__init__", "self") == [(r["I"], "assign", "self", {})]
    assert r.trace.history("put", "d") == [
        (r["P"], "assign", "d", {}), (r["P"] + 1, "assign", "d", {"k": "v"})]
    # fill's free variable shows the place outer's variable binds (the same dict): no new
    # assignment for it, and the change fill makes is in outer's history
    assert r.trace.history("outer.<locals>.fill", "shared") == []
    assert r.trace.assigned("outer", "shared") == [{}, {"a": 1}]


def test_module_namespace_excludes_dunders_and_modules(tmp_path):
    r = run(tmp_path, """
        '''Module doc.'''
        import os
        import sys as system
        from math import pi
        __all__ = ["A"]
        __version__ = "1.0"
        _private = 1
        A = [2]
        def g():
            pass
        class K:
            pass
        END = 0                           # [E]
        """)
    values = at(r.trace.steps("<__main__>"), r["E"])
    assert set(values) == {"pi", "_private", "A", "g", "K"}
    assert values["pi"] == 3.141592653589793
    assert values["A"] == [2]
    assert values["g"] == Raw("<function g>")
    assert values["K"] == Raw("<class __main__.K>")


def test_class_body_namespace(tmp_path):
    r = run(tmp_path, """
        class Config:
            '''Doc.'''
            import json
            name = "cfg"                  # [A]
            size = 3
            def method(self):
                return 1
            doubled = size * 2            # [B]
            del size
            END = True                    # [C]
        """)
    steps = r.trace.steps("Config")
    values = at(steps, r["B"])
    assert values == {"name": "cfg", "size": 3, "method": Raw("<function Config.method>")}
    values = at(steps, r["C"])
    assert values == {"name": "cfg", "doubled": 6,
                      "method": Raw("<function Config.method>")}
    assert r.trace.assigned("Config", "json") == []  # modules are not shown, nor bound
    assert r.trace.assigned("Config", "doubled") == [6]


def test_parameters_of_every_kind(tmp_path):
    r = run(tmp_path, """
        def f(a, b, /, c, d=4, *args, e, g=6, **kwargs):
            first = a                     # [A]
            return first
        f(1, 2, 3, 40, 50, 60, e=5, extra=7)
        f(1, 2, c=3, e=0)
        lam = lambda p, *q, r=1: p
        lam(9)
        """)
    first, second = r.trace.calls("f")
    expected = {"a": 1, "b": 2, "c": 3, "d": 40, "args": (50, 60), "e": 5, "g": 6,
                "kwargs": {"extra": 7}}
    assert first.args == expected
    assert first.steps[0].line == r["A"]
    assert first.steps[0].values == expected
    expected = {"a": 1, "b": 2, "c": 3, "d": 4, "args": (), "e": 0, "g": 6, "kwargs": {}}
    assert second.args == expected
    assert second.steps[0].values == expected
    (lam,) = r.trace.calls("<lambda>")
    assert lam.args == {"p": 9, "q": (), "r": 1}


def test_generator_locals_survive_yield_and_resume(tmp_path):
    r = run(tmp_path, """
        def gen(n):
            acc = []
            for i in range(n):
                sent = yield i                # [Y]
                acc.append((i, sent))         # [A]
            return acc
        g = gen(3)
        first = next(g)
        second = g.send("a")
        third = g.send("b")
        try:
            g.send("c")
        except StopIteration as stop:
            result = stop.value
        print(first, second, third, result)
        """)
    steps = r.trace.steps("gen")
    seen = [(v["n"], v["i"], v["sent"], v["acc"]) for v in every(steps, r["A"])]
    assert seen == [(3, 0, "a", []), (3, 1, "b", [(0, "a")]),
                    (3, 2, "c", [(0, "a"), (1, "b")])]
    calls = r.trace.calls("gen")
    assert len(calls) == 4
    assert [c.args.get("<sent>") for c in calls[1:]] == ["a", "b", "c"]
    # A returned container is summarised one level deep (README "What is recorded").
    assert [c.returned for c in calls] == [0, 1, 2, [Raw("<tuple of 2 items>")] * 3]
    assert r.trace.assigned("gen", "sent") == ["a", "b", "c"]
    assert r.result.stdout == "0 1 2 [(0, 'a'), (1, 'b'), (2, 'c')]\n"


# -- hostile values ------------------------------------------------------------------------------

HOSTILE = """
    import sys
    log = []

    class BadRepr:
        def __init__(self):
            self.v = 1
        def __repr__(self):
            log.append("repr")
            raise RuntimeError("repr called")
        __str__ = __repr__

    class BadGetattr:
        def __getattr__(self, name):
            log.append("getattr " + name)
            raise RuntimeError("getattr " + name)

    class Recursing:
        def __getattr__(self, name):
            log.append("recurse")
            return getattr(self, "x" + name)

    class Prop:
        def __init__(self):
            self.calls = 0
        @property
        def counter(self):
            log.append("property")
            self.calls += 1
            return self.calls

    class BadEq:
        def __eq__(self, other):
            log.append("eq")
            raise RuntimeError("eq")
        def __hash__(self):
            log.append("hash")
            raise RuntimeError("hash")

    class Lazy:
        '''A lazy proxy: any attribute access through the instance resolves it.'''
        def __init__(self, factory):
            object.__setattr__(self, "_factory", factory)
            object.__setattr__(self, "_wrapped", None)
        def __getattribute__(self, name):
            log.append("resolve " + name)
            if object.__getattribute__(self, "_wrapped") is None:
                object.__setattr__(self, "_wrapped", object.__getattribute__(self, "_factory")())
            return getattr(object.__getattribute__(self, "_wrapped"), name)
        @property
        def __class__(self):
            log.append("__class__")
            return dict
        def __len__(self):
            log.append("len")
            return 0
        def __iter__(self):
            log.append("iter")
            return iter(())

    def make():
        log.append("factory")
        return {}

    def main():
        bad_repr = BadRepr()
        bad_getattr = BadGetattr()
        recursing = Recursing()
        prop = Prop()
        bad_eq = BadEq()
        lazy = Lazy(make)
        loop = [1]
        loop.append(loop)
        selfd = {"a": 1}
        selfd["me"] = selfd
        big = list(range(10 ** 6))
        huge = 10 ** 9999
        nan = float("nan")
        inf = float("inf")
        ninf = -inf
        negz = -0.0
        surrogate = "a\\ud800b"
        blob = b"\\xff\\xfe\\x00abc"
        done = True                                   # [END]
        return len(big)

    main()
    LAZY = Lazy(make)
    LOOP = [0]
    LOOP.append(LOOP)
    print("side effects:", log, "property calls:", Prop().calls)
    END = 1                                           # [MEND]
    """


def test_hostile_values_are_shown_without_running_user_code(tmp_path):
    r = run(tmp_path, HOSTILE)
    assert r.result.stdout == "side effects: [] property calls: 0\n"
    assert r.result.stderr == ""
    assert r.metadata.get("probe_failures", 0) == 0
    values = at(r.trace.steps("main"), r["END"])
    assert values["bad_repr"] == {"v": 1}
    assert values["bad_repr"].type_name == "__main__.BadRepr"
    assert values["bad_getattr"] == Struct("__main__.BadGetattr", {})
    assert values["bad_getattr"].type_name == "__main__.BadGetattr"
    assert values["recursing"].type_name == "__main__.Recursing"
    assert values["prop"] == {"calls": 0}
    assert values["bad_eq"].type_name == "__main__.BadEq"
    assert values["lazy"] == {"_factory": Raw("<function make>"), "_wrapped": None}
    assert values["lazy"].type_name == "__main__.Lazy"
    # cycles: the container met again is a Reference
    loop = values["loop"]
    assert loop[0] == 1 and isinstance(loop[1], Ref) and len(loop) == 2
    selfd = values["selfd"]
    assert selfd["a"] == 1 and isinstance(selfd["me"], Ref)
    # a million elements: the first ones, then a visible cut
    big = values["big"]
    assert big[:100] == list(range(100))
    assert len(big) == 101
    assert isinstance(big[-1], Raw) and re.fullmatch(r"… 999,?900 more", big[-1].r), big[-1]
    assert values["huge"] == 10 ** 9999
    assert [values[n].text for n in ("nan", "inf", "ninf", "negz")] == \
        ["NaN", "inf", "-inf", "-0.0"]
    assert values["surrogate"] == "a\\ud800b"
    assert values["blob"] == Raw(repr(b"\xff\xfe\x00abc"))
    module = at(r.trace.steps("<__main__>"), r["MEND"])
    assert module["LAZY"] == {"_factory": Raw("<function make>"), "_wrapped": None}
    assert module["LOOP"][0] == 0 and isinstance(module["LOOP"][1], Ref)
    # the huge int is a BigInt record, the floats are strings
    raw_values = [e["AssignCell"]["new_value"] for e in r.events if kind(e) == "AssignCell"]
    assert any(v["kind"] == "BigInt" for v in raw_values)
    assert {v["f"] for v in raw_values if v["kind"] == "Float"} >= {"NaN", "inf", "-inf", "-0.0"}


NODE_BUDGET = """
    class Square:
        def __init__(self, board, position):
            self.board = board
            self.position = position
            self.color = 0
            self.neighbours = []

    class Board:
        def __init__(self, size):
            self.size = size
            self.squares = [Square(self, i) for i in range(size)]

    def main():
        board = Board(40)
        flat = list(range(100))
        rows = [[i] * 3 for i in range(40)]
        table = {"inner": {i: -i for i in range(80)}}
        done = True                                   # [END]

    main()
    """


def test_an_object_graph_is_cut_at_the_node_budget(tmp_path):
    """A record shows at most Limits.nodes fields and elements of nested containers and
    objects (the top-level value's own are not counted); what comes later is summarised as
    at the depth limit, and a cut container says how many elements it did not show."""
    from ctinstrument.values import NODES
    assert 40 <= NODES < 80, "the program below is sized for a budget in this range"
    r = run(tmp_path, NODE_BUDGET)
    values = at(r.trace.steps("main"), r["END"])
    board = values["board"]
    assert board.type_name == "__main__.Board" and board["size"] == 40
    squares = board["squares"]
    shown = 40  # the list's own elements are nested: they count
    assert len(squares) == shown
    expanded = [s for s in squares[:shown] if isinstance(s, Struct)]
    summarised = [s for s in squares[:shown] if not isinstance(s, Struct)]
    # each expanded Square shows its 4 fields, all of them counted
    assert len(expanded) == max(0, (NODES - shown + 3) // 4)
    assert [s["position"] for s in expanded] == list(range(len(expanded)))
    # (their fields are at the depth limit)
    assert all(s["board"] == Raw("<__main__.Board object>") for s in expanded)
    assert summarised == [Raw("<__main__.Square object>")] * len(summarised), summarised[:2]
    # a flat list of 100 numbers: only its own elements, not counted
    assert values["flat"] == list(range(100))
    # 40 nested lists of 3: the first ones in full, one cut where the budget ends, then
    # summaries
    rows = values["rows"]
    assert len(rows) == 40
    whole, rest = divmod(NODES, 3)
    assert rows[:whole] == [[i] * 3 for i in range(whole)]
    if rest:
        assert rows[whole] == [whole] * rest + [Raw("… {:,} more".format(3 - rest))]
        whole += 1
    assert rows[whole:] == [Raw("<list of 3 items>")] * (40 - whole)
    # a nested dict: its first entries, then the cut
    inner = values["table"]["inner"]
    assert inner[:NODES] == [(i, -i) for i in range(NODES)]
    assert inner[NODES:] == [Raw("… {:,} more".format(80 - NODES))]


# -- redaction -----------------------------------------------------------------------------------

REDACTION = """
    def login(user, password):
        ok = len(password) > 3            # [L]
        return ok

    class Client:
        def __init__(self):
            self.client_secret = "cs-789"
            self.name = "client"

    password = "hunter2"
    config = {"api_key": "sk-123", "region": "eu"}
    myfield = "custom-value"
    nested = {"myfield": "custom-key-value", "other": 1}
    client = Client()
    login("bob", "pw-abc")
    END = 1                               # [E]
    """
SECRETS = ("hunter2", "sk-123", "pw-abc", "cs-789")
REDACTED = Raw("<redacted>")


def test_secrets_are_redacted_by_default(tmp_path):
    r = run(tmp_path, REDACTION)
    values = at(r.trace.steps("<__main__>"), r["E"])
    assert values["password"] == REDACTED
    assert values["config"] == {"api_key": REDACTED, "region": "eu"}
    assert values["client"] == {"client_secret": REDACTED, "name": "client"}
    assert values["myfield"] == "custom-value"
    assert r.trace.assigned("<__main__>", "password") == [REDACTED]
    assert at(r.trace.steps("login"), r["L"])["password"] == REDACTED
    assert at(r.trace.steps("login"), r["L"])["user"] == "bob"
    (call,) = r.trace.calls("login")
    assert call.args == {"user": "bob", "password": REDACTED}
    for secret in SECRETS:
        assert secret not in r.text, secret
    assert r.metadata["redactions"] > 0


def test_no_redact_shows_secrets(tmp_path):
    r = run(tmp_path, REDACTION, options=["--no-redact"])
    values = at(r.trace.steps("<__main__>"), r["E"])
    assert values["password"] == "hunter2"
    assert values["config"] == {"api_key": "sk-123", "region": "eu"}
    assert values["client"] == {"client_secret": "cs-789", "name": "client"}
    (call,) = r.trace.calls("login")
    assert call.args == {"user": "bob", "password": "pw-abc"}
    assert "<redacted>" not in r.text
    assert r.metadata["redactions"] == 0


def test_redact_a_custom_name(tmp_path):
    r = run(tmp_path, REDACTION, options=["--redact", "myfield"])
    values = at(r.trace.steps("<__main__>"), r["E"])
    assert values["myfield"] == REDACTED
    assert values["nested"] == {"myfield": REDACTED, "other": 1}
    assert values["password"] == REDACTED  # the defaults still apply
    assert r.trace.assigned("<__main__>", "myfield") == [REDACTED]
    assert "custom-value" not in r.text and "custom-key-value" not in r.text
    assert r.metadata["redactions"] > 0
