"""Python object -> CodeTracer value record (FORMAT.md §Values), without running user code.

The encoder reads only what the interpreter stores: the exact type of a value, the items of
built-in containers, the digits of an int.  It never calls ``__repr__``, ``__str__``,
``__eq__``, ``__hash__``, ``__len__``, properties or ``__getattr__`` of user classes; anything
it does not know is shown as a ``Raw`` record built from the type's name.  Containers are cut
at ``max_items`` and ``max_depth`` with the cut shown as a final ``Raw`` element.
"""

import base64
import math
import types

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

# TypeKind numbers (FORMAT.md §TypeKind numbers).
KIND_SEQ = 0
KIND_STRUCT = 6
KIND_INT = 7
KIND_FLOAT = 8
KIND_STRING = 9
KIND_BOOL = 12
KIND_RAW = 16
KIND_ERROR = 24
KIND_TUPLE = 27
KIND_NONE = 30

NONE_VALUE = {"kind": "None", "type_id": 0}

_type_name_of = type.__dict__["__qualname__"].__get__
_type_module_of = type.__dict__["__module__"].__get__


def type_name(cls):
    """The qualified name of a class, read through ``type`` (a metaclass cannot intercept it)."""
    try:
        name = _type_name_of(cls)
        module = _type_module_of(cls)
    except Exception:
        return "?"
    if module in ("builtins", None) or not isinstance(module, str):
        return name
    return module + "." + name


def safe_text(text):
    """``text`` with lone surrogates replaced by ``\\udXXX`` escapes (they break JSON readers)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _float_text(value):
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


class ValueEncoder:
    """Encodes objects into value records (dicts in the CodeTracer JSON shape).

    ``intern_type(kind, lang_type)`` must return a type id whose ``Type`` event is already in
    the stream.  Limits: ``max_depth`` nested containers, ``max_items`` items per container,
    ``max_string`` characters per string.
    """

    def __init__(self, intern_type, max_depth=3, max_items=100, max_string=1000):
        self.intern_type = intern_type
        self.max_depth = max_depth
        self.max_items = max_items
        self.max_string = max_string
        t = intern_type
        self.int_type = t(KIND_INT, "int")
        self.bool_type = t(KIND_BOOL, "bool")
        self.float_type = t(KIND_FLOAT, "float")
        self.str_type = t(KIND_STRING, "str")
        self.list_type = t(KIND_SEQ, "list")
        self.tuple_type = t(KIND_TUPLE, "tuple")
        self.dict_type = t(KIND_SEQ, "dict")
        self.raw_type = t(KIND_RAW, "object")
        self.error_type = t(KIND_ERROR, "Error")
        self._true = {"kind": "Bool", "b": True, "type_id": self.bool_type}
        self._false = {"kind": "Bool", "b": False, "type_id": self.bool_type}
        self._raw_types = {}

    def encode(self, value, depth=0):
        """Return the value record of ``value``; never raises (failures become ``Error``)."""
        try:
            return self._encode(value, depth)
        except RecursionError:
            return {"kind": "Error", "msg": "too deep to capture", "type_id": self.error_type}
        except Exception as exc:
            return {"kind": "Error", "msg": "cannot capture: %s" % type(exc).__name__,
                    "type_id": self.error_type}

    def _encode(self, value, depth):
        cls = type(value)
        if value is None:
            return NONE_VALUE
        if cls is bool:
            return self._true if value else self._false
        if cls is int:
            if I64_MIN <= value <= I64_MAX:
                return {"kind": "Int", "i": value, "type_id": self.int_type}
            return self.big_int(value)
        if cls is float:
            return {"kind": "Float", "f": _float_text(value), "type_id": self.float_type}
        if cls is str:
            if len(value) > self.max_string:
                value = value[:self.max_string] + "… (%d more characters)" % (
                    len(value) - self.max_string)
            return {"kind": "String", "text": safe_text(value), "type_id": self.str_type}
        if cls is list or cls is tuple:
            return self._sequence(value, depth, cls is tuple)
        if cls is dict:
            return self._dict(value, depth)
        return self.raw(value)

    def big_int(self, value):
        magnitude = -value if value < 0 else value
        data = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
        return {"kind": "BigInt", "b": base64.b64encode(data).decode("ascii"),
                "negative": value < 0, "type_id": self.int_type}

    def _cut(self, count):
        return {"kind": "Raw", "r": "… %d more" % count, "type_id": self.raw_type}

    def _sequence(self, value, depth, is_tuple):
        if depth >= self.max_depth:
            return self.raw(value)
        items = value[:self.max_items]
        elements = [self._encode(item, depth + 1) for item in items]
        if len(value) > len(items):
            elements.append(self._cut(len(value) - len(items)))
        if is_tuple:
            return {"kind": "Tuple", "elements": elements, "type_id": self.tuple_type}
        return {"kind": "Sequence", "elements": elements, "is_slice": False,
                "type_id": self.list_type}

    def _dict(self, value, depth):
        if depth >= self.max_depth:
            return self.raw(value)
        elements = []
        for index, (key, item) in enumerate(dict.items(value)):
            if index == self.max_items:
                elements.append(self._cut(len(value) - index))
                break
            elements.append({"kind": "Tuple", "type_id": self.tuple_type, "elements": [
                self._encode(key, depth + 1), self._encode(item, depth + 1)]})
        return {"kind": "Sequence", "elements": elements, "is_slice": False,
                "type_id": self.dict_type}

    def raw(self, value):
        """A ``Raw`` record naming the value's type (and a safe detail for a few builtins)."""
        cls = type(value)
        type_id = self._raw_types.get(cls)
        if type_id is None:
            type_id = self.intern_type(KIND_RAW, type_name(cls))
            self._raw_types[cls] = type_id
        return {"kind": "Raw", "r": safe_text(self._describe(value, cls)), "type_id": type_id}

    def _describe(self, value, cls):
        if cls is list or cls is tuple or cls is dict:
            return "<%s of %d items>" % (cls.__name__, len(value))
        if cls is types.FunctionType or cls is types.BuiltinFunctionType:
            return "<function %s>" % value.__qualname__
        if cls is types.ModuleType:
            return "<module %s>" % value.__dict__.get("__name__", "?")
        # Subclass checks on the exact type: isinstance() would read a user __class__.
        if issubclass(cls, type):
            return "<class %s>" % type_name(value)
        if issubclass(cls, BaseException):
            return self._describe_exception(value, cls)
        return "<%s object>" % type_name(cls)

    def _describe_exception(self, value, cls):
        args = BaseException.args.__get__(value)
        shown = []
        for arg in args[:3]:
            kind = type(arg)
            if kind in (str, int, float, bool) or arg is None:
                shown.append(repr(arg) if kind is not str else repr(arg[:200]))
            else:
                shown.append("<%s>" % type_name(kind))
        return "%s(%s)" % (type_name(cls), ", ".join(shown))

    def lost_frame_value(self):
        """The return value shown for a frame that ended without a probe seeing it."""
        return {"kind": "Raw", "r": "<frame ended without a recorded return>",
                "type_id": self.raw_type}
