"""The private on-disk cache of instrumented code (portable code, see binding.py).

For a source file ``pkg/mod.py`` the entry lives in the directory CPython would put the
module's bytecode in (``importlib.util.cache_from_source``, so ``sys.pycache_prefix`` is
honoured), under a name no interpreter looks for::

    pkg/__pycache__/mod.cpython-312.ctinstrument-0.1.0-1a2b3c4d.pyc
    pkg/__pycache__/mod.cpython-312.opt-1.ctinstrument-0.1.0-1a2b3c4d.pyc   (python -O)

The 8 hex digits start the *generator key*: a hash of everything that changes the generated
code (ctinstrument's version, the source of the modules that generate or bind code, the
``bytecode`` library's version, the interpreter's cache tag and bytecode magic, the
optimization level).  The file starts with our own ``MAGIC`` (not CPython's, so no plain
loader accepts it even under another name), then the full key, the source hash
(``importlib.util.source_hash``), a digest of the payload and the payload,
``marshal((code, registrations))``.  An entry is used only if all of them match.

Never raises: an unreadable, missing, stale, truncated or corrupt entry is a miss; an
``OSError`` while writing (read-only tree, ``__pycache__`` being a file) leaves the module
uncached.  Writes are atomic (pid-suffixed temporary file in the same directory, then
``os.replace``) and skipped while ``sys.dont_write_bytecode`` is set (entries are still read,
as CPython still reads ``.pyc`` files then).
"""

import hashlib
import importlib.util
import marshal
import os
import sys
import threading
import types

import bytecode

from . import __version__, binding, instructions, rewriter, verifier
from .isolation import PRIVATE_BUILTINS as __builtins__  # noqa: F401 (see isolation.py)

MAGIC = b"CTINSTR\x01"  # the last byte is the file layout's version
KEY_SIZE = 16
SOURCE_HASH_SIZE = 8
DIGEST_SIZE = 16
HEADER_SIZE = len(MAGIC) + KEY_SIZE + SOURCE_HASH_SIZE + DIGEST_SIZE

# Modules whose source decides what code is generated or how it is bound.
GENERATORS = (rewriter, instructions, verifier, binding, sys.modules[__name__])


def generator_key():
    """The key digest (KEY_SIZE bytes), or None when a generator's source cannot be read."""
    digest = hashlib.sha256()
    for part in (__version__, bytecode.__version__, sys.implementation.cache_tag,
                 importlib.util.MAGIC_NUMBER.hex(), str(sys.flags.optimize)):
        digest.update(repr(part).encode() + b"\0")
    for module in GENERATORS:
        try:
            with open(module.__file__, "rb") as handle:
                digest.update(handle.read())
        except (OSError, TypeError):
            return None
        digest.update(b"\0")
    return digest.digest()[:KEY_SIZE]


class CodeCache:
    """Reads and writes cache entries, counting entries ``loaded`` and ``written`` in
    ``stats`` (a dict, given or new)."""

    def __init__(self, stats=None):
        self._key = None
        self._key_known = False
        self._writing = threading.local()
        self.stats = {} if stats is None else stats
        self.stats.update(loaded=0, written=0)

    @property
    def key(self):
        if not self._key_known:
            self._key = generator_key()
            self._key_known = True
        return self._key

    def cache_path(self, source_path):
        """Where the entry of ``source_path`` lives, or None when there is no place for it."""
        key = self.key
        if key is None:
            return None
        try:
            plain = importlib.util.cache_from_source(source_path)
        except (NotImplementedError, ValueError):  # no cache tag; odd path
            return None
        stem = plain[:-len(".pyc")] if plain.endswith(".pyc") else plain
        return "%s.ctinstrument-%s-%s.pyc" % (stem, __version__, key.hex()[:8])

    def load(self, source_path, source):
        """The ``binding.Portable`` cached for ``source`` (bytes of ``source_path``), or None."""
        path = self.cache_path(source_path)
        if path is None:
            return None
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        portable = self._decode(data, source)
        if portable is not None:
            self.stats["loaded"] += 1
        return portable

    def _decode(self, data, source):
        if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
            return None
        offset = len(MAGIC)
        if data[offset:offset + KEY_SIZE] != self.key:
            return None
        offset += KEY_SIZE
        if data[offset:offset + SOURCE_HASH_SIZE] != importlib.util.source_hash(source):
            return None
        offset += SOURCE_HASH_SIZE
        digest = data[offset:offset + DIGEST_SIZE]
        payload = data[HEADER_SIZE:]
        if hashlib.blake2b(payload, digest_size=DIGEST_SIZE).digest() != digest:
            return None
        try:
            code, registrations = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):
            return None
        if type(code) is not types.CodeType or type(registrations) is not tuple:
            return None
        return binding.Portable(code, registrations)

    def store(self, source_path, source, portable):
        """Write the entry of ``source``; returns whether it was written."""
        if sys.dont_write_bytecode or getattr(self._writing, "active", False):
            return False
        path = self.cache_path(source_path)
        if path is None:
            return False
        self._writing.active = True
        try:
            try:
                payload = marshal.dumps((portable.code, portable.registrations))
            except ValueError:  # an unmarshallable constant
                return False
            data = b"".join((MAGIC, self.key, importlib.util.source_hash(source),
                             hashlib.blake2b(payload, digest_size=DIGEST_SIZE).digest(),
                             payload))
            if _write_atomic(path, data):
                self.stats["written"] += 1
                return True
            return False
        finally:
            self._writing.active = False


def _write_atomic(path, data):
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``; False on OSError."""
    temporary = "%s.%d.tmp" % (path, os.getpid())
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError:
        return False
    try:
        with open(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
        return True
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False
