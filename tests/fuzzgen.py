"""Seeded generator of random, terminating, deterministic Python programs for differential
testing (plain run vs recorded run, see test_fuzz.py and tools/fuzz.py).

``program(seed)`` returns the source of one program.  The same seed gives the same program on
every interpreter (3.10 syntax only).  Programs mix the constructs that have their own
bytecode shapes: comprehensions of every kind (nested, with conditions, walrus, async),
generators driven by next/send/throw/close, coroutines and async generators under asyncio,
try/except/else/finally with return and break inside, with statements that suppress,
match, closures with nonlocal, lambdas, classes with super(), unpacking, star arguments,
f-strings, and exceptions that escape to the top level (the exit status is compared too).
Loops are bounded by ``range`` or a counter, so every program ends.
"""

import json
import random

PRELUDE = '''\
import asyncio
import sys

class Ctx:
    def __init__(self, name, suppress=False):
        self.name, self.suppress = name, suppress
    def __enter__(self):
        print("enter", self.name)
        return len(self.name)
    def __exit__(self, kind, value, tb):
        print("exit", self.name, kind.__name__ if kind else None)
        return self.suppress

class ACtx:
    async def __aenter__(self):
        await asyncio.sleep(0)
        return 7
    async def __aexit__(self, *exc):
        return False

async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i

async def avalue(x):
    await asyncio.sleep(0)
    return x

def gen(n):
    got = 0
    try:
        for i in range(n):
            got = yield i + got if got else i
    except KeyError:
        yield -1
    finally:
        print("gen done", n)

class Base:
    def __init__(self, v):
        self.v = v
    def value(self):
        return self.v

class Derived(Base):
    def value(self):
        return super().value() * 2 + len(__class__.__name__)
'''


class _Gen:
    def __init__(self, rng):
        self.rng = rng
        self.counter = 0
        self.functions = []

    def fresh(self, prefix="v"):
        self.counter += 1
        return "%s%d" % (prefix, self.counter)

    def expr(self, names, depth=0):
        rng = self.rng
        choice = rng.randrange(12 if depth < 2 else 3)
        if choice == 0 or not names:
            return str(rng.randrange(-3, 10))
        if choice in (1, 2):
            return rng.choice(names)
        a, b = self.expr(names, depth + 1), self.expr(names, depth + 1)
        if choice == 3:
            return "(%s %s %s)" % (a, rng.choice("+-*"), b)
        if choice == 4:
            return "(%s // (%s or 1))" % (a, b)
        if choice == 5:
            return "(%s if %s > %s else %s)" % (a, b, rng.randrange(5), self.expr(names, 2))
        if choice == 6:
            var = self.fresh("c")
            return "sum([%s for %s in range(%d) if %s %% 2])" % (
                self.expr(names + [var], depth + 1), var, rng.randrange(5), var)
        if choice == 7:
            return "len({%s: %s for %s in range(%d)})" % (
                a, b, self.fresh("k"), rng.randrange(4))
        if choice == 8:
            return "(lambda p, q=%s: p - q)(%s)" % (b, a)
        if choice == 9:
            var = self.fresh("w")
            return "max([(%s := %s) for _ in range(2)] + [0])" % (var, a)
        if choice == 10:
            return "sum(x * %s for x in range(%d))" % (a, rng.randrange(4))
        return "(%s < %s <= %s)" % (a, b, self.expr(names, 2))

    def block(self, names, depth, in_loop=False, is_async=False, in_function=True):
        count = self.rng.randrange(1, 4)
        lines = []
        for _ in range(count):
            lines.extend(self.statement(names, depth, in_loop, is_async, in_function))
        return lines

    def statement(self, names, depth, in_loop, is_async, in_function):
        rng = self.rng
        kinds = ["assign", "assign", "aug", "print", "if", "for", "try", "with", "unpack",
                 "gen", "match", "closure", "class", "raise", "while", "fstring", "star"]
        if in_loop:
            kinds += ["break", "continue"]
        if is_async:
            kinds += ["await", "acomp", "afor", "awith"]
        if depth > 2:
            kinds = ["assign", "aug", "print"] + (["break"] if in_loop else [])
        kind = rng.choice(kinds)
        indent = lambda body: ["    " + line for line in body]  # noqa: E731
        if kind == "assign" or not names:
            var = self.fresh()
            line = "%s = %s" % (var, self.expr(names))
            names.append(var)
            return [line]
        if kind == "aug":
            return ["%s %s= %s" % (rng.choice(names), rng.choice("+-"), self.expr(names))]
        if kind == "print":
            return ["print(%s)" % ", ".join(rng.sample(names, min(len(names), 3)))]
        if kind == "fstring":
            return ["print(f'{%s!r:>6}|{%s:+d}')" % (rng.choice(names), rng.choice(names))]
        if kind == "if":
            body = ["if %s:" % self.expr(names)] + indent(
                self.block(list(names), depth + 1, in_loop, is_async, in_function))
            if rng.random() < 0.5:
                body += ["else:"] + indent(self.block(list(names), depth + 1, in_loop,
                                                      is_async, in_function))
            return body
        if kind == "for":
            var = self.fresh("i")
            body = ["for %s in range(%d):" % (var, rng.randrange(4))] + indent(
                self.block(names + [var], depth + 1, True, is_async, in_function))
            if rng.random() < 0.3:
                body += ["else:", "    print('loop else')"]
            return body
        if kind == "while":
            var = self.fresh("n")
            return ["%s = %d" % (var, rng.randrange(4)), "while %s > 0:" % var,
                    "    %s -= 1" % var] + indent(self.block(names + [var], depth + 1, True,
                                                              is_async, in_function))
        if kind == "try":
            exc = rng.choice(["ZeroDivisionError", "ValueError", "KeyError"])
            var = self.fresh("e")
            body = ["try:"] + indent(self.block(list(names), depth + 1, in_loop, is_async,
                                                in_function))
            if rng.random() < 0.5:
                body += ["    if %s > 2:" % self.expr(names), "        raise %s(%s)"
                         % (exc, rng.choice(names))]
            body += ["except (%s, ArithmeticError) as %s:" % (exc, var),
                     "    print('caught', type(%s).__name__)" % var]
            if rng.random() < 0.4:
                body += ["else:", "    print('no exception')"]
            if rng.random() < 0.6:
                body += ["finally:"] + indent(self.block(list(names), depth + 1, False,
                                                         is_async, in_function))
            return body
        if kind == "with":
            var = self.fresh("m")
            suppress = rng.random() < 0.5
            body = ["with Ctx(%r, %s) as %s:" % (var, suppress, var)] + indent(
                self.block(names + [var], depth + 1, in_loop, is_async, in_function))
            if suppress:
                body += ["    1 // (%s - %s)" % (var, var)]
            return body
        if kind == "unpack":
            a, b = self.fresh(), self.fresh()
            names.extend([a, b])
            return ["%s, *%s = [%s, %s, %s]" % (a, b, self.expr(names[:-2]),
                                                self.expr(names[:-2]), self.expr(names[:-2])),
                    "%s = len(%s)" % (b, b)]
        if kind == "gen":
            var = self.fresh("g")
            n = rng.randrange(1, 5)
            names.append(var)
            driver = rng.choice([
                "%s = sum(gen(%d))" % (var, n),
                "%s = gen(%d); next(%s); %s = %s.send(%s)" % (var, n, var, var, var,
                                                               self.expr(names[:-1])),
                "%s = gen(%d); next(%s); %s = %s.throw(KeyError)" % (var, n, var, var, var),
                "%s = gen(%d); next(%s); %s.close(); %s = 0" % (var, n, var, var, var),
            ])
            return ["try:", "    " + driver, "except StopIteration:", "    %s = -2" % var]
        if kind == "match":
            subject = self.expr(names)
            var = self.fresh("p")
            return ["match [%s, %s]:" % (subject, rng.choice(names)),
                    "    case [0, _]:", "        print('zero')",
                    "    case [int(%s), y] if %s > y:" % (var, var),
                    "        print('bigger', %s)" % var,
                    "    case [*rest]:", "        print('rest', len(rest))"]
        if kind == "closure":
            outer, inner = self.fresh("f"), self.fresh("f")
            var = self.fresh()
            names.append(var)
            return ["def %s(a):" % outer, "    acc = a", "    def %s(b):" % inner,
                    "        nonlocal acc", "        acc += b", "        return acc",
                    "    return [%s(x) for x in range(3)]" % inner,
                    "%s = sum(%s(%s))" % (var, outer, self.expr(names[:-1]))]
        if kind == "class":
            var = self.fresh()
            names.append(var)
            return ["%s = Derived(%s).value()" % (var, self.expr(names[:-1]))]
        if kind == "raise":
            return ["if %s == %d:" % (rng.choice(names), rng.randrange(3)),
                    "    raise ValueError('fuzz %d')" % rng.randrange(100)]
        if kind == "star":
            var = self.fresh()
            names.append(var)
            return ["%s = (lambda *a, **k: len(a) + len(k))(*[%s], **{'z': %s})"
                    % (var, self.expr(names[:-1]), self.expr(names[:-1]))]
        if kind == "break":
            return ["if %s:" % self.expr(names), "    break"]
        if kind == "continue":
            return ["if %s:" % self.expr(names), "    continue"]
        if kind == "await":
            var = self.fresh()
            line = "%s = await avalue(%s)" % (var, self.expr(names))
            names.append(var)
            return [line]
        if kind == "acomp":
            var, item = self.fresh(), self.fresh("a")
            names.append(var)
            form = rng.choice(["[%s async for %s in agen(%d)%s]", "{%s async for %s in agen(%d)%s}",
                               "[await avalue(%s) for %s in range(%d)%s]"])
            cond = rng.choice(["", " if await avalue(%s %% 2)" % item, " if %s" % item])
            return ["%s = len(%s)" % (var, form % (self.expr(names[:-1] + [item]), item,
                                                   rng.randrange(4), cond))]
        if kind == "afor":
            var = self.fresh("a")
            return ["async for %s in agen(%d):" % (var, rng.randrange(3))] + indent(
                self.block(names + [var], depth + 1, True, True, in_function))
        var = self.fresh("m")
        return ["async with ACtx() as %s:" % var] + indent(
            self.block(names + [var], depth + 1, in_loop, True, in_function))

    def function(self, is_async):
        name = self.fresh("afun" if is_async else "fun")
        params = ["x", "y=2"]
        body = self.block(["x", "y"], 0, is_async=is_async)
        result = self.expr(["x", "y"])
        lines = ["%sdef %s(%s):" % ("async " if is_async else "", name, ", ".join(params))]
        lines += ["    " + line for line in body] + ["    return %s" % result]
        self.functions.append((name, is_async))
        return lines


def program(seed):
    """The source of program number ``seed`` (see the module docstring)."""
    rng = random.Random(seed)
    gen = _Gen(rng)
    lines = [PRELUDE]
    for _ in range(rng.randrange(2, 5)):
        lines.extend(gen.function(rng.random() < 0.4))
        lines.append("")
    lines.append("def main():")
    for name, is_async in gen.functions:
        call = "asyncio.run(%s(%d))" % (name, rng.randrange(-2, 5)) if is_async \
            else "%s(%d)" % (name, rng.randrange(-2, 5))
        lines += ["    try:", "        print(%r, %s)" % (name, call),
                  "    except (ArithmeticError, LookupError, ValueError) as exc:",
                  "        print(%r, 'raised', type(exc).__name__, exc)" % name]
    ending = rng.choice(["", "sys.exit(%d)" % rng.randrange(1, 4),
                         "raise RuntimeError('escaped')"])
    lines += ["", "main()", ending, ""]
    return "\n".join(lines)


def differences(seed, workdir):
    """Run program ``seed`` plainly and recorded in ``workdir`` (a pathlib.Path, created);
    return what differs: [] when stdout, stderr, exit status, the steps (vs sys.settrace)
    and the trace's conformance all agree, else one line per difference."""
    from tracetools import (CHECKER, child_env, load_events, record, run_plain,
                            settrace_lines, steps_by_thread)
    import subprocess
    import sys

    app = workdir / "app"
    app.mkdir(parents=True)
    script = app / "prog.py"
    script.write_text(program(seed))
    plain = run_plain(script, cwd=app)
    trace = workdir / "trace"
    recorded = record(script, trace, cwd=app)
    found = []
    for what in ("returncode", "stdout", "stderr"):
        if getattr(plain, what) != getattr(recorded, what):
            found.append("%s: plain %r, recorded %r" % (what, getattr(plain, what)[-300:]
                                                        if what != "returncode" else
                                                        plain.returncode,
                                                        getattr(recorded, what)[-300:]
                                                        if what != "returncode" else
                                                        recorded.returncode))
    if recorded.returncode < 0 or not (trace / "trace.json").is_file():
        return found or ["no trace"]
    steps = sorted(steps_by_thread(load_events(trace), root=app).values())
    if steps != sorted(settrace_lines(script, app, cwd=app).values()):
        found.append("steps differ from sys.settrace line events")
    check = subprocess.run([sys.executable, str(CHECKER), "--strict", str(trace)],
                           capture_output=True, text=True, env=child_env(), timeout=300)
    if check.returncode != 0:
        found.append("conformance: " + check.stdout[-300:])
    with open(trace / "trace_metadata.json") as handle:
        rejected = json.load(handle).get("verifier", {}).get("rejected", 0)
    if rejected:
        found.append("verifier rejected %d code objects" % rejected)
    return found
