"""The optional C part (native/speedups.c); everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("_ctinstrument_speedups", ["native/speedups.c"], optional=True)])
