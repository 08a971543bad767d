"""Python object -> CodeTracer value record (FORMAT.md §Values), without running user code.

The encoder reads only what the interpreter stores: the exact type of a value, the items of
built-in containers (through the base type's C methods, so a subclass cannot intercept),
instance dicts and slots through the interpreter's own descriptors, the digits of an int.
It never calls ``__repr__``, ``__str__``, ``__eq__``, ``__hash__``, ``__len__``,
properties or ``__getattr__`` of user classes.  What it cannot show safely becomes a ``Raw``
record naming the type.  Limits (``Limits``): nesting depth, items per container, characters
per string; a cut is shown as a final ``Raw`` element (``"… 9,900 more"``).  A container met
again inside the same value (a cycle or a shared reference) is a ``Reference``.  Values are
encoded and dropped: the encoder keeps no reference to them.
"""

import binascii
import collections
import enum
import itertools
import math
import types

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

# TypeKind numbers (FORMAT.md §TypeKind numbers).
KIND_SEQ = 0
KIND_SET = 1
KIND_STRUCT = 6
KIND_INT = 7
KIND_FLOAT = 8
KIND_STRING = 9
KIND_BOOL = 12
KIND_RAW = 16
KIND_ERROR = 24
KIND_TUPLE = 27
KIND_VARIANT = 28
KIND_NONE = 30

NONE_VALUE = {"kind": "None", "type_id": 0}

_type_dict = type.__dict__["__dict__"].__get__
_type_name_of = type.__dict__["__qualname__"].__get__
_type_module_of = type.__dict__["__module__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
# The args tuple of an exception, read past any property a subclass defines.
exception_args = BaseException.__dict__["args"].__get__
_GetSet = types.GetSetDescriptorType
_Member = types.MemberDescriptorType
# Types whose repr is computed by the interpreter from the value alone.
_SAFE_REPR = (complex, range, bytes, bytearray, slice)
# Whether an iterable of types holds only str (field names shown as they are).
str_only = frozenset({str}).issuperset
# What a slice's Raw shows by its repr (anything else by its type's name).
_SLICE_PARTS = (int, bool, float, type(None))
_OWN_MODULES = __name__.rpartition(".")[0] + "."
# ctinstrument's own objects are never shown, except as a short Raw; one that stands in for
# an object of the program is shown as that object: class -> function(value) -> object.
STAND_INS = {}
# Fields and elements per value record (Limits.nodes).  Every change of a place re-sends
# its whole record (the format cannot share parts of one), so an object graph shown to
# depth 3 x 100 items (a board of squares that point back at the board) would cost tens of
# kilobytes per change, and the trace, which CodeTracer reads whole, could not be opened.
# Measured on pyperformance's go at its default size, in bytes per step: 6,219 unbounded,
# 1,769 at 100, 895 at 50.
NODES = 50
# The key of ``seen`` (whose other keys are ids) that holds the nodes a record may still
# show (the fingerprint walk of probes.py keeps its budget so too).
NODES_LEFT = "nodes left"


class Limits:
    """How much of a value is captured: ``depth`` nested containers, ``items`` per
    container, ``string`` characters per string (bytes: per bytes object), and ``nodes``
    fields and elements of nested containers and objects per value record in all (the
    top-level value's own are not counted): once that many are shown, a nested container
    shows no more elements (its cut says how many it has left) and the containers and
    objects still to come are shown as at the depth limit (``<list of 3 items>``,
    ``<Square object>``)."""

    def __init__(self, depth=3, items=100, string=1000, nodes=NODES):
        if min(depth, items, string, nodes) < 1:
            raise ValueError("value limits must be positive")
        self.depth = depth
        self.items = items
        self.string = string
        self.nodes = nodes


def type_name(cls):
    """The qualified name of a class, read through ``type`` (a metaclass cannot intercept it)."""
    try:
        name = plain_text(_type_name_of(cls))
        module = _type_module_of(cls)
    except Exception:
        return "?"
    if module is None:
        return name
    module = plain_text(module)
    if module in ("builtins", "?"):
        return name
    return module + "." + name


def plain_text(text):
    """``text`` as an exact str (a str subclass's own methods are not run), or "?" for
    what is not a str (a name the program set to another object)."""
    if type(text) is str:
        return text
    # issubclass of its type: isinstance() would read a user __class__.
    return str.__str__(text) if issubclass(type(text), str) else "?"


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


def class_attribute(cls, name):
    """``name`` from the class dicts along the MRO, read without descriptors or metaclasses."""
    for klass in _type_mro(cls):
        namespace = _type_dict(klass)
        if name in namespace:
            return namespace[name]
    return None


_MISSING = object()
_dict_descriptors = {}  # class -> the interpreter's own __dict__ descriptor, or None


def _instance_dict(value, cls):
    """The instance ``__dict__`` through the interpreter's own descriptor, or None."""
    descriptor = _dict_descriptors.get(cls, _GetSet)
    if descriptor is _GetSet:
        if len(_dict_descriptors) > 10_000:  # classes made at run time must not pile up here
            _dict_descriptors.clear()
        descriptor = class_attribute(cls, "__dict__")
        if type(descriptor) is not _GetSet:
            descriptor = None  # no instance dict, or a user-defined __dict__ attribute
        _dict_descriptors[cls] = descriptor
    if descriptor is None:
        return None
    namespace = descriptor.__get__(value, cls)
    return namespace if type(namespace) is dict else None


def plain_instance_dict(cls):
    """For a class whose instances are shown by their ``__dict__`` alone (the interpreter's
    own descriptor, no slots, not a container, enum, named tuple or one of ctinstrument's):
    the getter of that dict; else None."""
    if _kind_of(cls) is not _OBJECT or _slot_names(cls):
        return None
    descriptor = class_attribute(cls, "__dict__")
    if type(descriptor) is not _GetSet:
        return None
    return descriptor.__get__


_slots_of = {}  # class -> its slots as (class, name) pairs: fixed when the class is made


def _slot_names(cls):
    known = _slots_of.get(cls)
    if known is None:
        if len(_slots_of) > 10_000:  # classes made at run time must not pile up here
            _slots_of.clear()
        known = _slots_of[cls] = _find_slot_names(cls)
    return known


def _find_slot_names(cls):
    names = []
    for klass in _type_mro(cls):
        slots = _type_dict(klass).get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if isinstance(name, str) and name not in ("__dict__", "__weakref__"):
                names.append((klass, name))
    return names


def shown_as(cls):
    """How the encoder shows instances of ``cls``, for the fingerprint walk of probes.py:
    ``"raw"`` (a Raw record whose text depends on the value, see ``ValueEncoder.raw``),
    ``"opaque"`` (``<T object>``, whatever the instance holds), ``"items"`` (a list, tuple,
    set, frozenset or deque, or a subclass of one: its first items), ``"mapping"`` (a dict
    or a subclass), ``"named tuple"``, ``"object"`` (a Struct of the instance dict alone,
    read with ``plain_instance_dict``), or None for any other way (enums, slots, reprs)."""
    kind = _kind_of(cls)
    if kind in (_LIST, _TUPLE, _SET, _FROZENSET, _DEQUE):
        return "items"
    if kind in (_RAW, _MAPPING, _NAMED_TUPLE):
        return kind
    if kind is not _OBJECT:
        return None
    if _slot_names(cls):
        return None
    # Without the interpreter's own __dict__ descriptor no field is read (see _object).
    return "object" if type(class_attribute(cls, "__dict__")) is _GetSet else "opaque"


def first_items(value, cls, limit):
    """(the first ``limit`` items, as a list or tuple, and the length) of ``value``, an
    instance ``cls`` of list, tuple, set or frozenset (or a subclass) or of deque, read
    through the base type's C methods so that a subclass cannot intercept them."""
    if issubclass(cls, tuple):
        return tuple.__getitem__(value, slice(0, limit)), tuple.__len__(value)
    if issubclass(cls, list):
        return list.__getitem__(value, slice(0, limit)), list.__len__(value)
    if issubclass(cls, set):
        iterator, total = set.__iter__(value), set.__len__(value)
    elif issubclass(cls, frozenset):
        iterator, total = frozenset.__iter__(value), frozenset.__len__(value)
    else:  # the deque itself (a subclass of it is shown as an object)
        iterator, total = iter(value), len(value)
    return list(itertools.islice(iterator, limit)), total


# How a class's instances are encoded (decided once per class by _kind_of).
_SAFE, _RAW, _OWN, _MAPPING, _ENUM, _NAMED_TUPLE, _TUPLE, _LIST, _SET, _FROZENSET, _DEQUE, \
    _OBJECT = ("safe", "raw", "own", "mapping", "enum", "named tuple", "tuple", "list", "set",
               "frozenset", "deque", "object")


def _kind_of(cls):
    try:
        module = _type_module_of(cls)
    except Exception:
        module = None
    if type(module) is str and module.startswith(_OWN_MODULES):
        return _OWN
    if cls in _SAFE_REPR:
        return _SAFE
    if cls in (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
               types.ModuleType) or issubclass(cls, (type, BaseException)):
        return _RAW
    if issubclass(cls, dict):
        return _MAPPING
    if issubclass(cls, enum.Enum):
        return _ENUM
    if issubclass(cls, tuple):
        return _NAMED_TUPLE if class_attribute(cls, "_fields") is not None else _TUPLE
    if issubclass(cls, list):
        return _LIST
    if issubclass(cls, set):
        return _SET
    if issubclass(cls, frozenset):
        return _FROZENSET
    if cls is collections.deque:
        return _DEQUE
    return _OBJECT


def spend_nodes(seen, count):
    """Take ``count`` nodes from the budget in ``seen`` (Limits.nodes, under NODES_LEFT);
    returns how many of them may be shown (0 to ``count``)."""
    left = seen[NODES_LEFT]
    seen[NODES_LEFT] = left - count
    return count if count <= left else max(left, 0)


class ValueEncoder:
    """Encodes objects into value records (dicts in the CodeTracer JSON shape).

    ``intern_type(kind, lang_type, fields=None)`` must return a type id whose ``Type`` event
    is already in the stream (``fields``: field names of a Struct type); ``is_secret(name)``
    says whether an attribute or key name holds a secret (its value is redacted);
    ``limits`` is a ``Limits``.
    """

    def __init__(self, intern_type, limits=None, is_secret=None):
        self.intern_type = intern_type
        self.limits = limits or Limits()
        self.is_secret = is_secret
        self.redactions = 0
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
        self._types = {}
        self._kinds = {}  # class -> how its instances are encoded
        self._object_raws = {}  # class -> the Raw record of its instances at the depth limit
        self._function_raws = {}  # __qualname__ -> the Raw record of a function
        # (class, field names) -> Struct type id of an instance dict shown as it is, or None
        # (a name that is not a str or names a secret: see _object).
        self._shapes = {}

    def encode(self, value, depth=0, seen=None):
        """Return the value record of ``value``; never raises (failures become ``Error``).

        ``seen``: a dict that receives the id() of every container and object shown (True)
        and of what a change to would change what is shown (False)."""
        if seen is None:
            seen = {}
        seen[NODES_LEFT] = self.limits.nodes
        try:
            return self._encode(value, depth, seen)
        except RecursionError:
            return {"kind": "Error", "msg": "too deep to capture", "type_id": self.error_type}
        except Exception as exc:
            return {"kind": "Error", "msg": "cannot capture: %s" % type(exc).__name__,
                    "type_id": self.error_type}

    def _type_id(self, kind, cls, fields=None):
        key = (kind, cls, fields)
        known = self._types.get(key)
        if known is None:
            known = self._types[key] = self.intern_type(kind, type_name(cls), fields)
        return known

    def _encode(self, value, depth, seen):
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
            return {"kind": "String", "text": self._text(value), "type_id": self.str_type}
        # ``seen`` also lists what is shown without its contents (False): a change to it may
        # still change what is shown (a bytearray, a function's name, a length at the limit).
        key = id(value)
        kind = self._kinds.get(cls)
        if kind is None:
            if len(self._kinds) > 10_000:  # classes made at run time must not pile up here
                self._kinds.clear()
                self._object_raws.clear()
            kind = self._kinds[cls] = _kind_of(cls)
        if kind is _SAFE:
            seen.setdefault(key, False)
            return self._safe_repr(value, cls)
        if kind is _RAW:
            seen.setdefault(key, False)
            if cls is types.BuiltinFunctionType:  # named after its __self__'s type
                seen.setdefault(id(value.__self__), False)
            return self.raw(value)
        if kind is _OWN:
            stand_in = STAND_INS.get(cls)
            if stand_in is None:
                return self.raw(value)
            return self._encode(stand_in(value), depth, seen)
        if depth >= self.limits.depth or seen[NODES_LEFT] <= 0:
            seen.setdefault(key, False)
            if kind is _OBJECT:  # "<T object>": the same record for every instance
                known = self._object_raws.get(cls)
                if known is None:
                    known = self._object_raws[cls] = self.raw(value)
                return known
            return self.raw(value)
        if seen.get(key):
            return {"kind": "Reference", "dereferenced": self.raw(value), "address": key,
                    "mutable": True, "type_id": self._type_id(KIND_RAW, cls)}
        seen[key] = True
        if kind is _OBJECT:
            return self._object(value, cls, depth, seen)
        if kind is _MAPPING:
            return self._mapping(value, cls, depth, seen)
        if kind is _ENUM:
            return self._enum(value, cls, depth, seen)
        if kind is _NAMED_TUPLE:
            return self._named_tuple(value, cls, depth, seen)
        items, total = first_items(value, cls, self.limits.items)  # the kinds left
        return self._items(items, total, cls, depth, seen,
                           "Tuple" if kind is _TUPLE else "Sequence")

    def _text(self, value):
        limit = self.limits.string
        if len(value) <= limit and value.isascii():  # the common case: nothing to replace
            return value
        if len(value) > limit:
            value = value[:limit] + "… (%d more characters)" % (len(value) - limit)
        return safe_text(value)

    def _safe_repr(self, value, cls):
        if cls in (bytes, bytearray) and len(value) > self.limits.string:
            text = "%r… (%d more bytes)" % (value[:self.limits.string],
                                           len(value) - self.limits.string)
        elif cls is slice:  # its repr would run the repr of whatever its parts are
            text = "slice(%s)" % ", ".join([
                repr(part) if type(part) in _SLICE_PARTS else "<%s>" % type_name(type(part))
                for part in (value.start, value.stop, value.step)])
        else:
            text = repr(value)
        return {"kind": "Raw", "r": text, "type_id": self._type_id(KIND_RAW, cls)}

    def big_int(self, value):
        magnitude = -value if value < 0 else value
        data = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
        encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
        return {"kind": "BigInt", "b": encoded, "negative": value < 0,
                "type_id": self.int_type}

    def _cut(self, count):
        return {"kind": "Raw", "r": "… {:,} more".format(count), "type_id": self.raw_type}

    def _items(self, items, total, cls, depth, seen, kind):
        if depth:
            shown = spend_nodes(seen, len(items))
            if shown < len(items):
                items = items[:shown]
        elements = [self._encode(item, depth + 1, seen) for item in items]
        if total > len(elements):
            elements.append(self._cut(total - len(elements)))
        if kind == "Tuple":
            type_id = self.tuple_type if cls is tuple else self._type_id(KIND_TUPLE, cls)
            return {"kind": "Tuple", "elements": elements, "type_id": type_id}
        if cls is list:
            type_id = self.list_type
        else:
            type_id = self._type_id(KIND_SET if issubclass(cls, (set, frozenset))
                                    else KIND_SEQ, cls)
        return {"kind": "Sequence", "elements": elements, "is_slice": False,
                "type_id": type_id}

    def _mapping(self, value, cls, depth, seen):
        elements = []
        limit = self.limits.items
        if depth:
            limit = spend_nodes(seen, min(limit, dict.__len__(value)))
        for index, (key, item) in enumerate(dict.items(value)):
            if index == limit:
                elements.append(self._cut(dict.__len__(value) - index))
                break
            if self.is_secret is not None and type(key) is str and self.is_secret(key):
                shown = self.redacted_value()
            else:
                shown = self._encode(item, depth + 1, seen)
            elements.append({"kind": "Tuple", "type_id": self.tuple_type,
                             "elements": [self._encode(key, depth + 1, seen), shown]})
        type_id = self.dict_type if cls is dict else self._type_id(KIND_SEQ, cls)
        return {"kind": "Sequence", "elements": elements, "is_slice": False,
                "type_id": type_id}

    def _enum(self, value, cls, depth, seen):
        namespace = _instance_dict(value, cls) or {}
        name = namespace.get("_name_")
        if depth:
            spend_nodes(seen, 1)
        contents = self._encode(namespace.get("_value_"), depth + 1, seen)
        return {"kind": "Variant", "discriminator": name if type(name) is str else "?",
                "contents": contents, "type_id": self._type_id(KIND_VARIANT, cls)}

    def _named_tuple(self, value, cls, depth, seen):
        names = class_attribute(cls, "_fields")
        count = tuple.__len__(value)
        if type(names) is not tuple or len(names) != count:
            return self._items(tuple.__getitem__(value, slice(0, self.limits.items)), count,
                               cls, depth, seen, "Tuple")
        fields = [(name, tuple.__getitem__(value, index)) for index, name in enumerate(names)]
        return self._struct(fields, cls, depth, seen)

    def _object(self, value, cls, depth, seen):
        namespace = _instance_dict(value, cls)
        if namespace is not None and len(namespace) <= self.limits.items \
                and not _slot_names(cls):
            # The common case: the fields are the instance dict, in its order, its names
            # and values read at once (another thread may change it while this runs).
            fields = tuple(dict.items(namespace))
            names = tuple([name for name, _ in fields])
            type_id = self.struct_type(cls, names)
            if type_id is not None:
                seen.setdefault(id(namespace), False)  # stores into it change this object
                if depth:
                    spend_nodes(seen, len(names))
                encode = self._encode
                depth += 1
                return {"kind": "Struct",
                        "field_values": [encode(item, depth, seen) for _, item in fields],
                        "type_id": type_id}
        fields = []
        if namespace is not None:
            seen.setdefault(id(namespace), False)  # stores into it change this object
            for name, item in dict.items(namespace):
                if type(name) is str:
                    fields.append((name, item))
        for klass, name in _slot_names(cls):
            descriptor = _type_dict(klass).get(name)
            if type(descriptor) is _Member:
                try:
                    fields.append((name, descriptor.__get__(value, cls)))
                except AttributeError:
                    pass  # slot never assigned
        if not fields and namespace is None:
            return self.raw(value)
        return self._struct(fields[:self.limits.items], cls, depth, seen)

    def struct_type(self, cls, names):
        """The Struct type id of an instance dict of ``cls`` shown as it is, whose field
        names are ``names`` (a tuple), or None (a name that is not a str or names a secret:
        the dict is shown field by field)."""
        if not str_only(map(type, names)):  # hashing the key would run their __hash__
            return None
        key = (cls, names)
        type_id = self._shapes.get(key, _MISSING)
        if type_id is _MISSING:
            type_id = self._shape(key)
        return type_id

    def raw_type_id(self, cls):
        """The type id of the Raw records of instances of ``cls``."""
        return self._type_id(KIND_RAW, cls)

    def sequence_type_id(self, cls):
        """The type id of the Sequence records of instances of ``cls``, a list subclass."""
        return self._type_id(KIND_SEQ, cls)

    def encode_nested(self, value, depth, seen):
        """The record of ``value`` met at ``depth`` inside a record that ``encode`` is making
        with ``seen`` (node budget included); raises what ``encode`` turns into an Error
        record.  For the C encoder of ``_ctinstrument_speedups``, which asks for what it
        does not write itself."""
        return self._encode(value, depth, seen)

    def _shape(self, key):
        cls, names = key
        secret = self.is_secret
        if all(type(name) is str and not (secret is not None and secret(name))
               for name in names):
            type_id = self._type_id(KIND_STRUCT, cls, names)
        else:
            type_id = None
        if len(self._shapes) > 10_000:  # shapes made at run time must not pile up here
            self._shapes.clear()
        self._shapes[key] = type_id
        return type_id

    def _struct(self, fields, cls, depth, seen):
        if depth:
            spend_nodes(seen, len(fields))  # a Struct shows all fields of its type
        names = tuple(name for name, _ in fields)
        values = []
        for name, item in fields:
            if self.is_secret is not None and self.is_secret(name):
                values.append(self.redacted_value())
            else:
                values.append(self._encode(item, depth + 1, seen))
        return {"kind": "Struct", "field_values": values,
                "type_id": self._type_id(KIND_STRUCT, cls, names)}

    def raw(self, value):
        """A ``Raw`` record naming the value's type (and a safe detail for a few builtins)."""
        cls = type(value)
        if cls is not types.FunctionType:
            return {"kind": "Raw", "r": safe_text(self._describe(value, cls)),
                    "type_id": self._type_id(KIND_RAW, cls)}
        # The commonest (namespaces, dicts of callbacks): one record per qualified name.
        name = plain_text(value.__qualname__)
        known = self._function_raws.get(name)
        if known is None:
            if len(self._function_raws) > 10_000:
                self._function_raws.clear()
            known = self._function_raws[name] = {
                "kind": "Raw", "r": safe_text(self._describe(value, cls)),
                "type_id": self._type_id(KIND_RAW, cls)}
        return known

    def _describe(self, value, cls):
        if cls in (list, tuple, dict, set, frozenset):
            return "<%s of %d items>" % (cls.__name__, len(value))
        if cls is types.FunctionType or cls is types.BuiltinFunctionType:
            return "<function %s>" % plain_text(value.__qualname__)
        if cls is types.MethodType:
            function = value.__func__
            name = plain_text(function.__qualname__) if type(function) is types.FunctionType \
                else "?"
            return "<bound method %s>" % name
        if cls is types.ModuleType:
            return "<module %s>" % plain_text(value.__dict__.get("__name__", "?"))
        # Subclass checks on the exact type: isinstance() would read a user __class__.
        if issubclass(cls, type):
            return "<class %s>" % type_name(value)
        if issubclass(cls, BaseException):
            return self._describe_exception(value, cls)
        return "<%s object>" % type_name(cls)

    def _describe_exception(self, value, cls):
        args = exception_args(value)
        shown = []
        for arg in args[:3]:
            kind = type(arg)
            if kind in (str, int, float, bool) or arg is None:
                shown.append(repr(arg) if kind is not str else repr(arg[:200]))
            else:
                shown.append("<%s>" % type_name(kind))
        return "%s(%s)" % (type_name(cls), ", ".join(shown))

    def redacted_value(self):
        """The value record that stands for a redacted secret (counted in ``redactions``)."""
        self.redactions += 1
        return {"kind": "Raw", "r": "<redacted>", "type_id": self.raw_type}

    def lost_frame_value(self):
        """The return value shown for a frame that ended without a probe seeing it."""
        return {"kind": "Raw", "r": "<frame ended without a recorded return>",
                "type_id": self.raw_type}
