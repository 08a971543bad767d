"""ctinstrument: record Python programs into CodeTracer traces by rewriting their bytecode.

See README.md for the command line; ``install_hook`` is the programmatic entry point.
"""

__version__ = "0.1.0"
