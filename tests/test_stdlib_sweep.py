"""A sample of the standard-library sweep (tools/stdlib_sweep.py; the full sweep and its
figures: tools/README.md): modules imported under the recorder do what they do plainly, no
recorder process crashes, the verifier rejects nothing."""

import json
import subprocess
import sys

from tracetools import REPO, child_env

SWEEP = REPO / "tools" / "stdlib_sweep.py"
# Modules with async code, comprehensions and deep try/with nesting, plus a seeded sample.
NAMED = ("asyncio.taskgroups", "asyncio.staggered", "dataclasses", "email.feedparser",
         "json.decoder", "tomllib._parser", "zipfile")


def _sweep(*args):
    result = subprocess.run([sys.executable, str(SWEEP), "--chunk", "8", *args],
                            capture_output=True, text=True, env=child_env(), timeout=1800)
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    return result.returncode, json.loads(lines[0]), lines[1:]


def test_named_modules_import_recorded_as_plain():
    code, figures, failures = _sweep(*NAMED)
    assert figures["modules"] >= 5  # asyncio.taskgroups and tomllib are 3.11+
    assert (code, failures) == (0, [])
    assert figures["crashes"] == figures["mismatches"] == figures["rejected"] == 0
    # Those the launcher had imported already are instrumented in the sweep's process.
    assert figures["instrumented"] == figures["modules"]
    assert figures["imported_recorded"] >= 1


def test_seeded_sample_imports_recorded_as_plain():
    code, figures, failures = _sweep("--sample", "3", "--seed", "11")
    assert (code, failures) == (0, [])
    assert figures["instrumented"] == figures["modules"] == 3
