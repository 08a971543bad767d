"""The private on-disk cache of instrumented code (portable code, see binding.py).

For a source file ``pkg/mod.py`` the entry lives in the directory CPython would put the
module's bytecode in (``importlib.util.cache_from_source``, so ``sys.pycache_prefix`` is
honoured), under a name no interpreter looks for::

    pkg/__pycache__/mod.cpython-312.ctinstrument-0.1.0-1a2b3c4d.pyc
    pkg/__pycache__/mod.cpython-312.opt-1.ctinstrument-0.1.0-1a2b3c4d.pyc   (python -O)

The 8 hex digits start the *generator key*: a hash of everything that changes the generated
code (ctinstrument's version, the source of the modules that generate or bind code and of
the ``bytecode`` library, the interpreter's cache tag and bytecode magic, the optimization
level).  It is computed from the files, without importing them: a run whose modules are all
cached never imports ``bytecode`` or the rewriter.  The file starts with our own ``MAGIC`` (not CPython's, so no plain
loader accepts it even under another name), then the full key, the source hash
(``importlib.util.source_hash``), a digest of the payload and the payload,
``marshal((code, registrations))``.  An entry is used only if all of them match.

Never raises: an unreadable, missing, stale, truncated or corrupt entry is a miss; an
``OSError`` while writing (read-only tree, ``__pycache__`` being a file) leaves the module
uncached.  Writes are atomic (pid-suffixed temporary file in the same directory, then
``os.replace``) and skipped while ``sys.dont_write_bytecode`` is set (entries are still read,
as CPython still reads ``.pyc`` files then).
"""

import importlib.util
import marshal
import os
import sys
import threading
import types

from . import __version__, binding
from .isolation import PATH, make_directories

try:
    # The builtin module hashlib takes it from: importing hashlib loads OpenSSL, which costs
    # more than all the rest of a cached start-up's cache work.
    from _blake2 import blake2b
except ImportError:  # an interpreter built without it
    from hashlib import blake2b

MAGIC = b"CTINSTR\x01"  # the last byte is the file layout's version
KEY_SIZE = 16
SOURCE_HASH_SIZE = 8
DIGEST_SIZE = 16
HEADER_SIZE = len(MAGIC) + KEY_SIZE + SOURCE_HASH_SIZE + DIGEST_SIZE

# Modules whose source decides what code is generated or how it is bound.
GENERATORS = ("rewriter.py", "instructions.py", "layout.py", "verifier.py", "protocol.py",
              "binding.py", "code_cache.py")
_HERE = os.path.dirname(os.path.abspath(__file__))


def _generator_files():
    """The paths of GENERATORS and of the ``bytecode`` library's modules (found, not
    imported), or None when ``bytecode`` is not to be found."""
    files = [os.path.join(_HERE, name) for name in GENERATORS]
    spec = importlib.util.find_spec("bytecode")
    if spec is None or not spec.submodule_search_locations:
        return None
    for directory in spec.submodule_search_locations:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return None
        files += [os.path.join(directory, name) for name in names if name.endswith(".py")]
    return files


def generator_key():
    """The key digest (KEY_SIZE bytes), or None when a generator's source cannot be read."""
    digest = blake2b(digest_size=KEY_SIZE)
    for part in (__version__, sys.implementation.cache_tag,
                 importlib.util.MAGIC_NUMBER.hex(), str(sys.flags.optimize)):
        digest.update(repr(part).encode() + b"\0")
    files = _generator_files()
    if files is None:
        return None
    for path in files:
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read())
        except OSError:
            return None
        digest.update(b"\0")
    return digest.digest()


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
        if blake2b(payload, digest_size=DIGEST_SIZE).digest() != digest:
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
                             blake2b(payload, digest_size=DIGEST_SIZE).digest(),
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
        make_directories(PATH.dirname(path))
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
