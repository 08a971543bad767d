"""A real program nobody here wrote: Python-Markdown (pure Python, from PyPI) converting a
document under the recorder with ``--include markdown``.  Its output must not change, every
line event inside the package must match sys.settrace, and the trace must conform."""

import os

import pytest

from tracetools import assert_conformant, child_env, load_events, record, run_plain, \
    settrace_lines, steps_by_thread

markdown = pytest.importorskip("markdown", reason="the test extra installs Markdown")

# Markdown's list and blockquote processors count the frames on the stack
# (util._get_stack_depth), and any launcher, the oracle's included, adds frames below the
# script: the oracle runs it with as many frames below it as the recorder does (measured
# by DEPTH_PROBE), so the number of line events there is the same.
DEPTH_PROBE = '''\
import sys
frame, below = sys._getframe().f_back, 0
while frame is not None:
    frame, below = frame.f_back, below + 1
print(below)
'''

DOCUMENT = '''\
# Title with *emphasis*

Some text with a [link](http://example.com) and `code`.

* item one
* item **two**
    1. nested
    2. list

    indented code block

| a | b |
|---|---|
| 1 | 2 |

> a quote with *emphasis*
> > and a nested one
'''

SCRIPT = '''\
import sys
import markdown

text = open(sys.argv[1], encoding="utf-8").read()
html = markdown.markdown(text, extensions=["tables", "fenced_code"])
print(html)
print(len(html))
'''


def test_markdown_under_the_recorder(tmp_path):
    (tmp_path / "doc.md").write_text(DOCUMENT)
    script = tmp_path / "convert.py"
    script.write_text(SCRIPT)
    plain = run_plain(script, ["doc.md"], cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    # The code cache goes under tmp_path, not into the shared site-packages.
    result = record(script, tmp_path / "t", args=["doc.md"], options=["--include", "markdown"],
                    cwd=tmp_path, env=child_env(PYTHONPYCACHEPREFIX=str(tmp_path / "pycache")))
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert result.stderr == plain.stderr

    package_dir = os.path.dirname(markdown.__file__)
    events = load_events(tmp_path / "t")
    steps = steps_by_thread(events, root=package_dir)
    probe = tmp_path / "depth_probe.py"
    probe.write_text(DEPTH_PROBE)
    depth = record(probe, tmp_path / "depth", options=["--include", "markdown"], cwd=tmp_path)
    assert depth.returncode == 0, depth.stderr
    oracle = settrace_lines(script, package_dir, args=["doc.md"], cwd=tmp_path,
                            ORACLE_STACK_DEPTH=depth.stdout.strip())
    assert sum(len(s) for s in steps.values()) > 1000
    assert sorted(steps.values()) == sorted(oracle.values())
    assert_conformant(tmp_path / "t")
