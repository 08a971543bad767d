"""The shared corpus of tricky programs (../shared/corpus) behaves identically under the
recorder (its own runner compares plain and recorded runs), and every trace it writes passes
the conformance checker."""

import re
import shutil
import subprocess
import sys

import pytest

from tracetools import CORPUS, assert_conformant, child_env

RUNNER = CORPUS / "run_corpus.py"
TEMPLATE = "python -m ctinstrument --include {modules} --out-dir {trace_dir} {script}"


def _cases():
    if not RUNNER.is_file():
        return []
    return sorted(p.stem for p in CORPUS.glob("*.py") if p.name != RUNNER.name) + sorted(
        p.parent.name for p in CORPUS.glob("*/main.py"))


@pytest.mark.skipif(not RUNNER.is_file(), reason="../shared/corpus is absent")
@pytest.mark.parametrize("case", _cases())
def test_corpus_case(case):
    result = subprocess.run(
        [sys.executable, str(RUNNER), "--python", sys.executable, "--case", case, "--keep",
         "--jobs", "1", TEMPLATE], capture_output=True, text=True, env=child_env(),
        timeout=600)
    kept = re.findall(r"^kept (.+)$", result.stderr, re.M)
    try:
        assert result.returncode == 0, result.stdout
        last = result.stdout.strip().splitlines()[-1]
        assert last in ("1 passed, 0 failed, 0 skipped", "0 passed, 0 failed, 1 skipped"), last
        if last.startswith("1 passed"):
            assert len(kept) == 1
            assert_conformant("%s/trace" % kept[0])
    finally:
        for directory in kept:
            shutil.rmtree(directory, ignore_errors=True)
