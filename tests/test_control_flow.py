"""Every control-flow path is recorded as balanced calls and returns with the right values:
generators driven by next/send/throw/close, asyncio tasks, exceptions unwinding through
frames, caught and re-raised exceptions, threads."""

import textwrap

from tracetools import assert_conformant, kind, load_events, record, run_plain

DEFINITIONS = {"Path", "Function", "Type", "VariableName"}


def _decode(value):
    k = value["kind"]
    if k in ("Int",):
        return value["i"]
    if k == "String":
        return value["text"]
    if k == "None":
        return None
    if k == "Bool":
        return value["b"]
    if k in ("Raw", "Error"):
        return value.get("r", value.get("msg"))
    if k in ("Sequence", "Tuple"):
        return [_decode(v) for v in value["elements"]]
    return k


def _record(tmp_path, source, args=()):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(source))
    plain = run_plain(script, args, cwd=tmp_path)
    result = record(script, tmp_path / "trace", args=args, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert_conformant(tmp_path / "trace")
    return load_events(tmp_path / "trace")


def _calls_and_returns(events):
    """[(thread, "call", name, {arg: value}) | (thread, "return", value) | (thread, "caught",
    text)] in trace order; names are the Function records' names."""
    functions, variables, out, thread = [], [], [], 1
    for event in events:
        name = kind(event)
        if name == "Function":
            functions.append(event["Function"]["name"])
        elif name == "VariableName":
            variables.append(event["VariableName"])
        elif name in ("ThreadStart", "ThreadSwitch"):
            thread = event[name]
        elif name == "Call":
            call = event["Call"]
            out.append((thread, "call", functions[call["function_id"]],
                        {variables[a["variable_id"]]: _decode(a["value"]) for a in call["args"]}))
        elif name == "Return":
            out.append((thread, "return", _decode(event["Return"]["return_value"])))
        elif name == "Event" and event["Event"]["metadata"] == "exception":
            out.append((thread, "caught", event["Event"]["content"]))
    return out


def _frames_of(sequence, function):
    """The call/return entries of ``function``'s activations (nesting followed per thread)."""
    stacks, picked = {}, []
    for entry in sequence:
        thread = entry[0]
        stack = stacks.setdefault(thread, [])
        if entry[1] == "call":
            stack.append(entry[2])
            if entry[2] == function:
                picked.append(entry[1:])
        elif entry[1] == "return":
            if stack and stack.pop() == function:
                picked.append(entry[1:])
    return picked


def test_generator_driven_by_next_send_throw_close(tmp_path):
    events = _record(tmp_path, """\
        def gen():
            try:
                x = yield 1
                y = yield x + 1
            except KeyError:
                yield "caught"
            finally:
                print("cleanup")
        g = gen()
        print(next(g))
        print(g.send(10))
        print(g.throw(KeyError("k")))
        g.close()
        """)
    frames = _frames_of(_calls_and_returns(events), "gen")
    assert frames[0] == ("call", "gen", {})
    assert frames[1] == ("return", 1)
    assert frames[2] == ("call", "gen", {"<sent>": 10})
    assert frames[3] == ("return", 11)
    assert frames[4] == ("call", "gen", {"<thrown>": "KeyError('k')"})
    assert frames[5] == ("return", "caught")
    assert frames[6][0] == "call" and frames[6][2] == {"<thrown>": "GeneratorExit()"}
    assert frames[7] == ("return", "GeneratorExit()")
    assert len(frames) == 8


def test_yield_from_delegation_nests(tmp_path):
    events = _record(tmp_path, """\
        def inner():
            yield 1
            yield 2
            return "done"
        def outer():
            result = yield from inner()
            yield result
        print(list(outer()))
        """)
    sequence = [e[1:] for e in _calls_and_returns(events) if e[1] != "caught"]
    inner_calls = [e for e in sequence if e[:2] == ("call", "inner")]
    assert len(inner_calls) == 3  # start and two resumes
    # Every inner activation sits inside an outer one.
    stack = []
    for entry in sequence:
        if entry[0] == "call":
            if entry[1] == "inner":
                assert stack and stack[-1] == "outer"
            stack.append(entry[1])
        else:
            stack.pop()
    assert _frames_of(_calls_and_returns(events), "inner")[-1] == ("return", "done")
    assert ("return", "done") in sequence


def test_asyncio_tasks_balance_and_return_their_results(tmp_path):
    events = _record(tmp_path, """\
        import asyncio
        async def worker(name, n):
            total = 0
            for i in range(n):
                await asyncio.sleep(0)
                total += i
            return name, total
        async def main():
            return await asyncio.gather(worker("a", 3), worker("b", 2), worker("c", 4))
        print(asyncio.run(main()))
        """)
    frames = _frames_of(_calls_and_returns(events), "worker")
    calls = [f for f in frames if f[0] == "call"]
    returns = [f for f in frames if f[0] == "return"]
    assert len(calls) == len(returns)
    assert [c[2] for c in calls[:3]] == [{"name": "a", "n": 3}, {"name": "b", "n": 2},
                                        {"name": "c", "n": 4}]
    finals = [r[1] for r in returns if isinstance(r[1], list)]
    assert sorted(finals) == [["a", 3], ["b", 1], ["c", 6]]


def test_exception_unwinds_through_three_frames_and_is_reraised(tmp_path):
    events = _record(tmp_path, """\
        def inner(x):
            if x > 2:
                raise ValueError("too big", x)
            return x
        def middle(x):
            return inner(x) + 1
        def outer(x):
            try:
                return middle(x)
            except ValueError as e:
                raise RuntimeError("wrapped") from e
        try:
            outer(5)
        except RuntimeError:
            print("caught")
        """)
    sequence = [e[1:] for e in _calls_and_returns(events)]
    start = sequence.index(("call", "outer", {"x": 5}))
    assert sequence[start:start + 8] == [
        ("call", "outer", {"x": 5}),
        ("call", "middle", {"x": 5}),
        ("call", "inner", {"x": 5}),
        ("return", "ValueError('too big', 5)"),
        ("return", "ValueError('too big', 5)"),
        ("caught", "ValueError('too big', 5)"),
        ("return", "RuntimeError('wrapped')"),
        ("caught", "RuntimeError('wrapped')"),
    ]


def test_four_threads_have_balanced_stacks_of_their_own(tmp_path):
    events = _record(tmp_path, """\
        import threading
        def leaf(i, k):
            return i * k
        def work(i, out):
            total = 0
            for k in range(200):
                total += leaf(i, k)
            out[i] = total
        out = [0] * 4
        threads = [threading.Thread(target=work, args=(i, out)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(out)
        """)
    sequence = _calls_and_returns(events)
    by_thread = {}
    for entry in sequence:
        by_thread.setdefault(entry[0], []).append(entry[1:])
    workers = [t for t, entries in by_thread.items() if entries[0][:2] == ("call", "work")]
    assert len(workers) == 4
    seen = set()
    for thread in workers:
        depth = 0
        index = None
        for entry in by_thread[thread]:
            if entry[0] == "call":
                depth += 1
                # every call in this thread belongs to this thread's work(i)
                index = entry[2]["i"] if index is None else index
                assert entry[2]["i"] == index
            elif entry[0] == "return":
                depth -= 1
                assert depth >= 0
        assert depth == 0
        seen.add(index)
    assert seen == {0, 1, 2, 3}
    starts = [e["ThreadStart"] for e in events if "ThreadStart" in e]
    exits = [e["ThreadExit"] for e in events if "ThreadExit" in e]
    assert set(workers) <= set(starts) and set(workers) <= set(exits)


def test_async_generator_asend_and_aclose(tmp_path):
    events = _record(tmp_path, """\
        import asyncio
        async def agen():
            x = yield 1
            yield x
        async def main():
            g = agen()
            print(await g.asend(None))
            print(await g.asend(5))
            await g.aclose()
        asyncio.run(main())
        """)
    frames = _frames_of(_calls_and_returns(events), "agen")
    assert [f for f in frames if f[0] == "return"] == [
        ("return", 1), ("return", 5), ("return", "GeneratorExit()")]
    assert frames[2] == ("call", "agen", {"<sent>": 5})
