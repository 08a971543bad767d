"""Issue 11: async comprehensions (inlined on 3.12+, PEP 709) in every position are recorded
without crashing the interpreter: the program prints and exits as without the recorder, its
steps are the ``sys.settrace`` line events, the trace is conformant and no code object was
left uninstrumented by the verifier."""

import json
import textwrap

import pytest

from tracetools import (assert_conformant, load_events, record, run_plain, settrace_lines,
                        steps_by_thread)

PRELUDE = """\
import asyncio

async def gen(n):
    for i in range(n):
        yield i

async def pred(x):
    await asyncio.sleep(0)
    return x % 2 == 0

async def double(x):
    await asyncio.sleep(0)
    return 2 * x
"""

PROGRAMS = {
    # The program of the issue, verbatim.
    "issue": """\
import asyncio
async def gen(n):
    for i in range(n):
        yield i
async def to_list(n):
    return [x async for x in gen(n)]
print(asyncio.run(to_list(3)))
""",
    "list_set_dict": PRELUDE + """
async def main(n):
    a = [x async for x in gen(n)]
    b = {x async for x in gen(n)}
    c = {x: x * x async for x in gen(n)}
    print(a, sorted(b), c)

asyncio.run(main(3))
""",
    "nested": PRELUDE + """
async def main(n):
    print([[y async for y in gen(x)] async for x in gen(n)])
    print([[y for y in range(x)] async for x in gen(n)])
    print([(y async for y in gen(x)) async for x in gen(n)] != [])

asyncio.run(main(3))
""",
    "await_in_condition_and_element": PRELUDE + """
async def main(n):
    print([x async for x in gen(n) if await pred(x)])
    print([await double(x) for x in range(n) if await pred(x)])
    print({await double(k): await double(k) async for k in gen(n)})

asyncio.run(main(5))
""",
    "outer_variable_kept_and_unbound": PRELUDE + """
async def bound(n):
    x = "outer"
    y = [x async for x in gen(n)]
    return x, y

async def unbound(n):
    y = [x async for x in gen(n)]
    try:
        return x
    except NameError:
        return y

async def walrus(n):
    out = [(last := x) async for x in gen(n)]
    return out, last

async def main():
    print(await bound(2), await unbound(2), await walrus(3))

asyncio.run(main())
""",
    "exception_inside": PRELUDE + """
async def caught(n):
    x = "kept"
    try:
        return [10 // (x - 1) async for x in gen(n)]
    except ZeroDivisionError as exc:
        return "caught", x, str(exc)

async def escapes(n):
    return {x: 1 // x async for x in gen(n)}

async def main():
    print(await caught(3))
    try:
        await escapes(2)
    except ZeroDivisionError as exc:
        print("escaped", exc)

asyncio.run(main())
""",
    "in_generators_and_lambdas": PRELUDE + """
async def agen_with_comp(n):
    for k in range(2):
        yield [x + k async for x in gen(n)]

lam = lambda n: (x * 3 async for x in gen(n))

def sync_gen(n):
    yield [x for x in range(n)]
    yield {x for x in range(n) if x}

async def main(n):
    print([v async for v in agen_with_comp(n)])
    print([y async for y in lam(n)])
    g = (x async for x in gen(n + 2) if await pred(x))
    print([y async for y in g])
    print(list(sync_gen(n)))

asyncio.run(main(2))
""",
    "in_loops_finally_and_methods": PRELUDE + """
class Holder:
    async def method(self, n):
        return [__class__.__name__ for _ in range(1)] + [x async for x in gen(n)]

async def main(n):
    found = None
    async for v in gen(n):
        found = [w async for w in gen(v) if w > 0]
        if found:
            break
    try:
        pass
    finally:
        last = [x async for x in gen(n)]
    print(found, last, await Holder().method(2))

asyncio.run(main(4))
""",
    "uncaught_exit_status": PRELUDE + """
async def main(n):
    return [1 // (x - 2) async for x in gen(n)]

print(asyncio.run(main(2)))
asyncio.run(main(3))
""",
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_async_comprehension_recorded_like_settrace(name, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    script = app / "prog.py"
    script.write_text(textwrap.dedent(PROGRAMS[name]))
    plain = run_plain(script, cwd=app)
    recorded = record(script, tmp_path / "trace", cwd=app)
    assert (recorded.returncode, recorded.stdout, recorded.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert plain.returncode in (0, 1) and plain.stdout  # the program ran (and may fail)
    steps = steps_by_thread(load_events(tmp_path / "trace"), root=app)
    oracle = settrace_lines(script, app, cwd=app)
    assert sorted(steps.values()) == sorted(oracle.values())
    assert_conformant(tmp_path / "trace")
    with open(tmp_path / "trace" / "trace_metadata.json") as handle:
        assert json.load(handle)["verifier"]["rejected"] == 0
