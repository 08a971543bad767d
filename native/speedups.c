/* _ctinstrument_speedups: the fingerprint walk of ctinstrument.probes in C.
 *
 * walk(value, depth, ids, held, seen) -> bool does what probes._walk_python does, append
 * the same ints and names to the list ``ids``, the same objects to ``held``,
 * the same entries in the dict ``seen`` (ids of the containers and objects walked -> their
 * index, and the node budget under the configured key), the same result.  What it cannot
 * decide by itself it asks the Python functions given to configure(): how a class is shown
 * (values.shown_as), the getter of a plain instance __dict__ (values.plain_instance_dict),
 * the first items of a set, deque or subclass (values.first_items), a named tuple's
 * _fields (values.class_attribute), the Raw records other than functions and methods
 * (probes._walk_raw).  same(value, depth, ids, seen) is that walk matching a fingerprint
 * taken before (probes._same) instead of appending.  No code of the program runs: the
 * containers are read through the base types' own storage, as the Python version reads
 * them through the base types' C methods.  encode(value, seen) is the encoder's common records (see its comment), and
 * join(...) the writer's loop over pre-encoded records (writer.join_records).
 * tests/test_speedups.py checks every one against its Python version.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* How a class's instances are walked (what values.shown_as says of it). */
enum { SHAPE_UNKNOWN, SHAPE_RAW, SHAPE_ITEMS, SHAPE_NAMED_TUPLE, SHAPE_MAPPING,
       SHAPE_OBJECT, SHAPE_OPAQUE };

/* Caches keyed by class are emptied past this many classes (classes made at run time). */
#define CLASS_CACHE_LIMIT 10000
/* Containers nested deeper than this (limits far above the default depth of 3) are left to
 * the Python encoder, whose RecursionError decides where such a record ends. */
#define NESTING_LIMIT 200

static PyObject *shape_of, *plain_of, *first_items, *class_attribute, *walk_raw;
static PyObject *budget_key, *fields_name, *minus_one;
static PyObject *shapes;  /* class -> shape (int) */
static PyObject *plain;   /* class -> instance __dict__ getter, or None */
static long long depth_limit, items_limit;

static int
is_scalar(PyTypeObject *cls)
{
    return cls == &PyLong_Type || cls == &PyUnicode_Type || cls == &PyFloat_Type
        || cls == &PyBool_Type || cls == Py_TYPE(Py_None) || cls == &PyBytes_Type
        || cls == &PyComplex_Type || cls == &PyRange_Type;
}

/* Where the walk puts what it describes: appended to ``ids`` (the scalars and names shown
 * by id to ``held``), or, when ``held`` is NULL, matched against the list ``ids`` from
 * ``at`` on (``same``: stops at the first difference, appends nothing). */
typedef struct {
    PyObject *ids, *held;
    Py_ssize_t at;
} Sink;

/* The item a matching walk expects next, or NULL when the fingerprint ends. */
static PyObject *
expected(Sink *sink)
{
    if (sink->at >= PyList_GET_SIZE(sink->ids))
        return NULL;
    return PyList_GET_ITEM(sink->ids, sink->at++);
}

/* Put ``item`` (a new reference: an exact int or str, or NULL after an error): 1, 0 when
 * it differs from the fingerprint matched, -1 on error. */
static int
put_new(Sink *sink, PyObject *item)
{
    if (item == NULL)
        return -1;
    int result;
    if (sink->held != NULL) {
        result = PyList_Append(sink->ids, item) < 0 ? -1 : 1;
    }
    else {
        PyObject *known = expected(sink);
        /* Exact ints and strs on both sides: comparing them runs no code of the program. */
        result = known != NULL && Py_TYPE(known) == Py_TYPE(item)
            ? PyObject_RichCompareBool(known, item, Py_EQ) : 0;
    }
    Py_DECREF(item);
    return result;
}

static int
put(Sink *sink, PyObject *item)
{
    return put_new(sink, Py_NewRef(item));
}

static int
put_id(Sink *sink, void *object)
{
    if (sink->held != NULL)
        return put_new(sink, PyLong_FromVoidPtr(object));
    PyObject *known = expected(sink);
    if (known == NULL || !PyLong_CheckExact(known))
        return 0;
    void *pointer = PyLong_AsVoidPtr(known);
    if (pointer == NULL && PyErr_Occurred())
        return -1;
    return pointer == object;
}

/* A value shown by id and held (so that its id stays unique): a scalar, a name. */
static int
put_held(Sink *sink, PyObject *value)
{
    int result = put_id(sink, value);
    if (result == 1 && sink->held != NULL && PyList_Append(sink->held, value) < 0)
        return -1;
    return result;
}

static int
cached(PyObject *cache, PyTypeObject *cls, PyObject *fill, PyObject **found)
{
    *found = PyDict_GetItemWithError(cache, (PyObject *)cls);
    if (*found != NULL)
        return 0;
    if (PyErr_Occurred())
        return -1;
    if (PyDict_GET_SIZE(cache) > CLASS_CACHE_LIMIT)
        PyDict_Clear(cache);
    PyObject *made = PyObject_CallOneArg(fill, (PyObject *)cls);
    if (made == NULL)
        return -1;
    int failed = PyDict_SetItem(cache, (PyObject *)cls, made);
    Py_DECREF(made);
    *found = made;  /* borrowed from the cache */
    return failed;
}

/* values.plain_text: ``text`` as an exact str (a str subclass copied without running its
 * methods), or "?" for what is not a str; a new reference. */
static PyObject *
plain_text(PyObject *text)
{
    if (PyUnicode_CheckExact(text))
        return Py_NewRef(text);
    if (PyUnicode_Check(text))
        return PyUnicode_FromObject(text);
    return PyUnicode_FromString("?");
}

/* type.__dict__["__qualname__"] and ["__module__"]: read through them, a metaclass cannot
 * intercept a class's names (values.type_name). */
static PyObject *type_qualname, *type_module, *qualname_name, *name_name;

/* values.type_name(cls): "module.Qualified" (the qualified name alone for builtins or
 * an unknown module, "?" when either cannot be read); a new reference. */
static PyObject *
type_name(PyObject *cls)
{
    PyObject *name = Py_TYPE(type_qualname)->tp_descr_get(type_qualname, cls, NULL);
    PyObject *plain_name = name == NULL ? NULL : plain_text(name);
    Py_XDECREF(name);
    PyObject *module = plain_name == NULL ? NULL
        : Py_TYPE(type_module)->tp_descr_get(type_module, cls, NULL);
    if (module == NULL) {
        Py_XDECREF(plain_name);
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL;
        PyErr_Clear();
        return PyUnicode_FromString("?");
    }
    if (module == Py_None) {
        Py_DECREF(module);
        return plain_name;
    }
    PyObject *plain_module = plain_text(module);
    Py_DECREF(module);
    if (plain_module == NULL) {
        Py_DECREF(plain_name);
        return NULL;
    }
    PyObject *result;
    if (PyUnicode_CompareWithASCIIString(plain_module, "builtins") == 0
            || PyUnicode_CompareWithASCIIString(plain_module, "?") == 0)
        result = Py_NewRef(plain_name);
    else
        result = PyUnicode_FromFormat("%U.%U", plain_module, plain_name);
    Py_DECREF(plain_module);
    Py_DECREF(plain_name);
    return result;
}

/* plain_text(module.__dict__.get("__name__")): "?" when it has none; a new reference. */
static PyObject *
module_name(PyObject *module)
{
    PyObject *name = PyDict_GetItemWithError(PyModule_GetDict(module), name_name);
    if (name == NULL)
        return PyErr_Occurred() ? NULL : PyUnicode_FromString("?");
    Py_INCREF(name);  /* the dict's __eq__ of a key may have let another thread drop it */
    PyObject *plain_name = plain_text(name);
    Py_DECREF(name);
    return plain_name;
}

static int
shape_code(PyObject *shape)
{
    static const char *const names[] = {"raw", "items", "named tuple", "mapping", "object",
                                        "opaque"};
    if (!PyUnicode_Check(shape))
        return SHAPE_UNKNOWN;
    for (int code = 0; code < 6; code++)
        if (PyUnicode_CompareWithASCIIString(shape, names[code]) == 0)
            return code + 1;
    return SHAPE_UNKNOWN;
}

static int
shape_fill(PyTypeObject *cls)
{
    PyObject *found = PyDict_GetItemWithError(shapes, (PyObject *)cls);
    if (found != NULL)
        return (int)PyLong_AsLong(found);
    if (PyErr_Occurred())
        return -1;
    if (PyDict_GET_SIZE(shapes) > CLASS_CACHE_LIMIT)
        PyDict_Clear(shapes);
    PyObject *shape = PyObject_CallOneArg(shape_of, (PyObject *)cls);
    if (shape == NULL)
        return -1;
    int code = shape_code(shape);
    Py_DECREF(shape);
    PyObject *number = PyLong_FromLong(code);
    if (number == NULL)
        return -1;
    int failed = PyDict_SetItem(shapes, (PyObject *)cls, number);
    Py_DECREF(number);
    return failed < 0 ? -1 : code;
}

static int
nodes_left(PyObject *seen, long long *left)
{
    PyObject *number = PyDict_GetItemWithError(seen, budget_key);
    if (number == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, budget_key);
        return -1;
    }
    *left = PyLong_AsLongLong(number);
    return (*left == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* values.spend_nodes: take ``count`` nodes from the budget; ``*shown``: how many of them
 * may be shown. */
static int
spend(PyObject *seen, Py_ssize_t count, Py_ssize_t *shown)
{
    long long left;
    if (nodes_left(seen, &left) < 0)
        return -1;
    PyObject *number = PyLong_FromLongLong(left - count);
    if (number == NULL)
        return -1;
    int failed = PyDict_SetItem(seen, budget_key, number);
    Py_DECREF(number);
    *shown = count <= left ? count : (left > 0 ? (Py_ssize_t)left : 0);
    return failed;
}

static int walk(PyObject *value, long long depth, Sink *sink, PyObject *seen);

static int
walk_raw_value(PyObject *value, PyTypeObject *cls, Sink *sink)
{
    if (cls == &PyFunction_Type)
        return put_held(sink, ((PyFunctionObject *)value)->func_qualname);
    if (cls == &PyMethod_Type) {
        PyObject *function = PyMethod_GET_FUNCTION(value);
        int result = put_held(sink, function);
        if (result != 1 || Py_TYPE(function) != &PyFunction_Type)
            return result;
        return put_held(sink, ((PyFunctionObject *)function)->func_qualname);
    }
    if (cls == &PyCFunction_Type)  /* its name, made afresh from its __self__'s type */
        return put_new(sink, PyObject_GetAttr(value, qualname_name));
    if (cls == &PyModule_Type) {
        int result = put_id(sink, value);
        return result != 1 ? result : put_new(sink, module_name(value));
    }
    if (PyType_Check(value))  /* a class: its name, read afresh */
        return put_new(sink, type_name(value));
    /* The rest in Python (probes._walk_raw), into lists of its own when matching. */
    PyObject *ids = sink->held != NULL ? Py_NewRef(sink->ids) : PyList_New(0);
    PyObject *held = sink->held != NULL ? Py_NewRef(sink->held) : PyList_New(0);
    int truth = -1;
    if (ids != NULL && held != NULL) {
        PyObject *result = PyObject_CallFunctionObjArgs(walk_raw, value, (PyObject *)cls,
                                                        ids, held, NULL);
        if (result != NULL) {
            truth = PyObject_IsTrue(result);
            Py_DECREF(result);
        }
    }
    if (truth == 1 && sink->held == NULL)
        for (Py_ssize_t i = 0; truth == 1 && i < PyList_GET_SIZE(ids); i++)
            truth = put(sink, PyList_GET_ITEM(ids, i));
    Py_XDECREF(ids);
    Py_XDECREF(held);
    return truth;
}

static int
walk_sequence(PyObject *items, Py_ssize_t count, long long depth, Sink *sink, PyObject *seen)
{
    int is_list = PyList_Check(items);
    for (Py_ssize_t i = 0; i < count; i++) {
        /* A list read again at each item: a callback may have let another thread in. */
        if (i >= Py_SIZE(items))
            break;
        PyObject *item = is_list ? PyList_GET_ITEM(items, i) : PyTuple_GET_ITEM(items, i);
        Py_INCREF(item);
        int result = walk(item, depth + 1, sink, seen);
        Py_DECREF(item);
        if (result != 1)
            return result;
    }
    return 1;
}

static int
walk_items(PyObject *value, PyTypeObject *cls, long long depth, Sink *sink, PyObject *seen)
{
    PyObject *items;
    Py_ssize_t total;
    if (cls == &PyList_Type || cls == &PyTuple_Type) {
        items = Py_NewRef(value);
        total = Py_SIZE(value);
    }
    else if (PyList_Check(value)) {  /* values.first_items: list.__getitem__, list.__len__ */
        items = PyList_GetSlice(value, 0, (Py_ssize_t)items_limit);
        if (items == NULL)
            return -1;
        total = Py_SIZE(value);
    }
    else {
        PyObject *pair = PyObject_CallFunction(first_items, "OOL", value, (PyObject *)cls,
                                               items_limit);
        if (pair == NULL)
            return -1;
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2
                || !(PyList_CheckExact(PyTuple_GET_ITEM(pair, 0))
                     || PyTuple_CheckExact(PyTuple_GET_ITEM(pair, 0)))) {
            Py_DECREF(pair);
            PyErr_SetString(PyExc_TypeError, "first_items must give (list or tuple, int)");
            return -1;
        }
        items = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
        total = PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 1));
        Py_DECREF(pair);
        if (total == -1 && PyErr_Occurred()) {
            Py_DECREF(items);
            return -1;
        }
    }
    Py_ssize_t count = total <= items_limit ? total : (Py_ssize_t)items_limit;
    int result = put_new(sink, PyLong_FromSsize_t(total));
    if (result != 1)
        goto done;
    result = -1;
    if (depth && spend(seen, count, &count) < 0)
        goto done;
    result = walk_sequence(items, count, depth, sink, seen);
done:
    Py_DECREF(items);
    return result;
}

static int
walk_named_tuple(PyObject *value, PyTypeObject *cls, long long depth, Sink *sink,
                 PyObject *seen)
{
    PyObject *names = PyObject_CallFunctionObjArgs(class_attribute, (PyObject *)cls,
                                                   fields_name, NULL);
    if (names == NULL)
        return -1;
    Py_ssize_t total = PyTuple_GET_SIZE(value), ignored;
    int result = 0;
    if (!PyTuple_CheckExact(names) || PyTuple_GET_SIZE(names) != total)
        goto done;
    result = put_held(sink, names);
    if (result != 1)
        goto done;
    result = -1;
    if (depth && spend(seen, total, &ignored) < 0)
        goto done;
    result = walk_sequence(value, total, depth, sink, seen);
done:
    Py_DECREF(names);
    return result;
}

/* The fields of a mapping or an instance __dict__ (``fields``, a dict): ``count`` of its
 * ``total`` shown. */
static int
walk_fields(PyObject *fields, Py_ssize_t total, Py_ssize_t count, long long depth,
            Sink *sink, PyObject *seen)
{
    Py_ssize_t position = 0;
    PyObject *name, *item;
    int result = put_new(sink, PyLong_FromSsize_t(total));
    if (result != 1)
        return result;
    if (count == total) {  /* all scalars: every name, then every value (as probes does) */
        int scalars = 1;
        while (scalars && PyDict_Next(fields, &position, &name, &item))
            scalars = is_scalar(Py_TYPE(name)) && is_scalar(Py_TYPE(item));
        if (scalars) {
            for (int pass = 0; pass < 2; pass++) {
                position = 0;
                while (PyDict_Next(fields, &position, &name, &item))
                    if ((result = put_held(sink, pass ? item : name)) != 1)
                        return result;
            }
            return 1;
        }
        position = 0;
    }
    Py_ssize_t size = PyDict_GET_SIZE(fields);
    while (count && PyDict_Next(fields, &position, &name, &item)) {
        count--;
        if (!is_scalar(Py_TYPE(name)))
            return 0;
        if ((result = put_held(sink, name)) != 1)
            return result;
        Py_INCREF(item);
        result = walk(item, depth + 1, sink, seen);
        Py_DECREF(item);
        if (result != 1)
            return result;
        if (PyDict_GET_SIZE(fields) != size) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during the walk");
            return -1;
        }
    }
    return 1;
}

static int
walk_mapping(PyObject *value, long long depth, Sink *sink, PyObject *seen)
{
    Py_ssize_t total = PyDict_GET_SIZE(value);
    Py_ssize_t count = total <= items_limit ? total : (Py_ssize_t)items_limit;
    if (depth && spend(seen, count, &count) < 0)
        return -1;
    return walk_fields(value, total, count, depth, sink, seen);
}

static int
walk_object(PyObject *value, PyTypeObject *cls, long long depth, Sink *sink, PyObject *seen)
{
    PyObject *getter;
    if (cached(plain, cls, plain_of, &getter) < 0)
        return -1;
    if (getter == Py_None)
        return 0;
    PyObject *fields = PyObject_CallFunctionObjArgs(getter, value, (PyObject *)cls, NULL);
    if (fields == NULL)
        return -1;
    int result = 0;
    if (!PyDict_CheckExact(fields))
        goto done;
    Py_ssize_t position = 0, ignored;
    PyObject *name, *item;
    while (PyDict_Next(fields, &position, &name, &item))
        if (!PyUnicode_CheckExact(name))
            goto done;  /* the encoder leaves out a field not named by a str */
    Py_ssize_t total = PyDict_GET_SIZE(fields);
    Py_ssize_t count = total <= items_limit ? total : (Py_ssize_t)items_limit;
    result = -1;
    if (depth && spend(seen, count, &ignored) < 0)
        goto done;
    result = walk_fields(fields, total, count, depth, sink, seen);
done:
    Py_DECREF(fields);
    return result;
}

/* 1: walked (what ``sink`` got describes ``value``), 0: ``value`` cannot be described
 * (or, when matching, differs from the fingerprint), -1: error. */
static int
walk(PyObject *value, long long depth, Sink *sink, PyObject *seen)
{
    PyTypeObject *cls = Py_TYPE(value);
    if (is_scalar(cls))
        return put_held(sink, value);
    int shape = shape_fill(cls);
    if (shape < 0)
        return -1;
    /* Every object shown counts by identity too (see probes._walk_python). */
    int result = put_id(sink, value);
    if (result != 1)
        return result;
    if (shape == SHAPE_RAW)  /* a Raw record at any depth, never a Reference */
        return walk_raw_value(value, cls, sink);
    if (shape == SHAPE_UNKNOWN)
        return 0;
    long long left;
    if (nodes_left(seen, &left) < 0)
        return -1;
    if (depth >= depth_limit || left <= 0) {
        /* Shown as a Raw naming the type (and the length of a builtin container). */
        result = put_id(sink, cls);
        if (result != 1 || !(cls == &PyList_Type || cls == &PyTuple_Type
                             || cls == &PyDict_Type || cls == &PySet_Type
                             || cls == &PyFrozenSet_Type))
            return result;
        return put_new(sink, PyLong_FromSsize_t(PyObject_Length(value)));
    }
    PyObject *key = PyLong_FromVoidPtr(value);
    if (key == NULL)
        return -1;
    PyObject *index = PyDict_GetItemWithError(seen, key);
    if (index != NULL) {  /* shown as a Reference */
        Py_DECREF(key);
        result = put(sink, minus_one);
        return result != 1 ? result : put(sink, index);
    }
    int failed = PyErr_Occurred() != NULL;
    if (!failed) {
        PyObject *number = PyLong_FromSsize_t(PyDict_GET_SIZE(seen));
        failed = number == NULL || PyDict_SetItem(seen, key, number) < 0;
        Py_XDECREF(number);
    }
    Py_DECREF(key);
    if (failed)
        return -1;
    result = put_id(sink, cls);
    if (result != 1)
        return result;
    switch (shape) {
    case SHAPE_ITEMS:
        return walk_items(value, cls, depth, sink, seen);
    case SHAPE_NAMED_TUPLE:
        return walk_named_tuple(value, cls, depth, sink, seen);
    case SHAPE_MAPPING:
        return walk_mapping(value, depth, sink, seen);
    case SHAPE_OBJECT:
        return walk_object(value, cls, depth, sink, seen);
    default:  /* opaque: shown as <T object> */
        return 1;
    }
}

/* ---- The encoder: value -> the JSON bytes of its value record ----------------------- */

/* What configure_encoder() gives: the Python encoder for what is not written here
 * (``fallback(value, depth, seen)`` -> bytes of ValueEncoder._encode's record, and
 * ``whole(value, seen)`` -> bytes of ValueEncoder.encode's), ``struct_type(cls, names)``
 * (the Struct type id of an instance dict with those field names, or None: see
 * ValueEncoder._object), ``raw_type_of(cls)`` (the type id of a Raw record of an instance),
 * ``sequence_type_of(cls)`` (the type id of the Sequence records of a list subclass),
 * ``is_secret(name)`` or None, ``redacted()`` (the bytes of
 * ValueEncoder.redacted_value()), the type ids of the builtins and the limits. */
static PyObject *fallback, *whole, *struct_type, *is_secret, *redacted;
static PyObject *sequence_type_of;
static PyObject *sequence_types;  /* list subclass -> that type id */
static PyObject *struct_types;  /* (class, names) -> Struct type id or None */
static PyObject *raw_type_of;  /* raw_type_of(cls): the type id of its Raw records */
static PyObject *raw_types;    /* class -> that type id */
static PyObject *object_raws;  /* class -> the bytes of "<T object>" (at the depth limit) */
static long long int_type, bool_type, float_type, str_type, list_type, tuple_type,
    dict_type, raw_type, string_limit, nodes_limit;

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Out;

static int
out_write(Out *out, const char *text, Py_ssize_t size)
{
    if (out->size + size > out->capacity) {
        Py_ssize_t capacity = out->capacity ? out->capacity : 256;
        while (capacity < out->size + size)
            capacity *= 2;
        char *data = PyMem_Realloc(out->data, (size_t)capacity);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        out->data = data;
        out->capacity = capacity;
    }
    memcpy(out->data + out->size, text, (size_t)size);
    out->size += size;
    return 0;
}

#define OUT_TEXT(out, text) out_write((out), (text), (Py_ssize_t)(sizeof(text) - 1))

static int
out_number(Out *out, long long number)
{
    char text[32];
    int size = snprintf(text, sizeof(text), "%lld", number);
    return out_write(out, text, size);
}

/* ``,"type_id":N}``: the end of every record written here. */
static int
out_type_end(Out *out, long long type_id)
{
    if (OUT_TEXT(out, ",\"type_id\":") < 0 || out_number(out, type_id) < 0)
        return -1;
    return OUT_TEXT(out, "}");
}

static int
out_bytes(Out *out, PyObject *bytes)
{
    if (bytes == NULL)
        return -1;
    int failed = -1;
    if (PyBytes_CheckExact(bytes))
        failed = out_write(out, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
    else
        PyErr_SetString(PyExc_TypeError, "the Python encoder must give bytes");
    Py_DECREF(bytes);
    return failed;
}

/* An ASCII str as a JSON string, escaped as orjson escapes it. */
static int
out_ascii(Out *out, PyObject *text)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *data = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), start = 0;
    if (OUT_TEXT(out, "\"") < 0)
        return -1;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = data[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        char escape[6] = {'\\', 0, 0, 0, 0, 0};
        Py_ssize_t length = 2;
        switch (c) {
        case '"': escape[1] = '"'; break;
        case '\\': escape[1] = '\\'; break;
        case '\b': escape[1] = 'b'; break;
        case '\t': escape[1] = 't'; break;
        case '\n': escape[1] = 'n'; break;
        case '\f': escape[1] = 'f'; break;
        case '\r': escape[1] = 'r'; break;
        default:
            escape[1] = 'u';
            escape[2] = '0';
            escape[3] = '0';
            escape[4] = hex[c >> 4];
            escape[5] = hex[c & 15];
            length = 6;
        }
        if (out_write(out, (const char *)data + start, i - start) < 0
                || out_write(out, escape, length) < 0)
            return -1;
        start = i + 1;
    }
    if (out_write(out, (const char *)data + start, size - start) < 0)
        return -1;
    return OUT_TEXT(out, "\"");
}

/* values.ValueEncoder._cut: the last element of a container shown in part. */
static int
out_cut(Out *out, Py_ssize_t count)
{
    char digits[32], text[48];
    int size = snprintf(digits, sizeof(digits), "%zd", count), length = 0;
    for (int i = 0; i < size; i++) {
        if (i && (size - i) % 3 == 0)
            text[length++] = ',';
        text[length++] = digits[i];
    }
    /* "\xe2\x80\xa6": the ellipsis, as UTF-8. */
    if (OUT_TEXT(out, "{\"kind\":\"Raw\",\"r\":\"\xe2\x80\xa6 ") < 0
            || out_write(out, text, length) < 0 || OUT_TEXT(out, " more\"") < 0)
        return -1;
    return out_type_end(out, raw_type);
}

static int encode(PyObject *value, long long depth, PyObject *seen, Out *out);
static int container_here(PyObject *value, long long depth, PyObject *seen);
static int encode_container(PyObject *value, PyTypeObject *cls, long long depth,
                            PyObject *seen, Out *out);

static int
encode_fallback(PyObject *value, long long depth, PyObject *seen, Out *out)
{
    PyObject *number = PyLong_FromLongLong(depth);
    if (number == NULL)
        return -1;
    PyObject *bytes = PyObject_CallFunctionObjArgs(fallback, value, number, seen, NULL);
    Py_DECREF(number);
    return out_bytes(out, bytes);
}

/* seen.setdefault(id(value), False): shown without its contents. */
static int
mark_seen(PyObject *value, PyObject *seen)
{
    PyObject *key = PyLong_FromVoidPtr(value);
    if (key == NULL)
        return -1;
    PyObject *known = PyDict_SetDefault(seen, key, Py_False);
    Py_DECREF(key);
    return known == NULL ? -1 : 0;
}

/* The type id that ``fill(cls)`` gives, kept in ``cache``, into *number; -1 on error. */
static int
cached_type_id(PyObject *cache, PyTypeObject *cls, PyObject *fill, long long *number)
{
    PyObject *type_id;
    if (cached(cache, cls, fill, &type_id) < 0)
        return -1;
    *number = PyLong_AsLongLong(type_id);
    return *number == -1 && PyErr_Occurred() ? -1 : 0;
}

/* ValueEncoder.raw of an exact list, tuple or dict: "<list of 3 items>". */
static int
out_container_raw(Out *out, PyObject *value, PyTypeObject *cls)
{
    long long number;
    if (cached_type_id(raw_types, cls, raw_type_of, &number) < 0)
        return -1;
    char text[96];
    Py_ssize_t length = cls == &PyDict_Type ? PyDict_GET_SIZE(value) : Py_SIZE(value);
    int size = snprintf(text, sizeof(text), "{\"kind\":\"Raw\",\"r\":\"<%s of %zd items>\"",
                        cls->tp_name, length);
    if (out_write(out, text, size) < 0)
        return -1;
    return out_type_end(out, number);
}

/* ValueEncoder's Reference record to ``value`` shown above: its Raw (``raw``, ``size``
 * bytes), its address, the type id of instances of ``cls``'s Raw records. */
static int
out_reference(Out *out, PyObject *value, PyTypeObject *cls, const char *raw, Py_ssize_t size)
{
    long long number;
    if (cached_type_id(raw_types, cls, raw_type_of, &number) < 0)
        return -1;
    if (OUT_TEXT(out, "{\"kind\":\"Reference\",\"dereferenced\":") < 0
            || out_write(out, raw, size) < 0 || OUT_TEXT(out, ",\"address\":") < 0
            || out_number(out, (long long)(uintptr_t)value) < 0
            || OUT_TEXT(out, ",\"mutable\":true") < 0)
        return -1;
    return out_type_end(out, number);
}

/* seen[id(value)] = True, unless it is there and true (then 1: shown as a Reference). */
static int
mark_shown(PyObject *value, PyObject *seen)
{
    PyObject *key = PyLong_FromVoidPtr(value);
    if (key == NULL)
        return -1;
    PyObject *known = PyDict_GetItemWithError(seen, key);
    int result = -1;
    if (known != NULL) {
        result = PyObject_IsTrue(known);
        if (result != 0)
            goto done;
    }
    else if (PyErr_Occurred())
        goto done;
    result = PyDict_SetItem(seen, key, Py_True);
done:
    Py_DECREF(key);
    return result;
}

static int
encode_elements(PyObject *items, Py_ssize_t count, Py_ssize_t total, long long depth,
                PyObject *seen, Out *out)
{
    if (depth && spend(seen, count, &count) < 0)
        return -1;
    if (OUT_TEXT(out, "\"elements\":[") < 0)
        return -1;
    int is_list = PyList_CheckExact(items);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = is_list ? PyList_GET_ITEM(items, i) : PyTuple_GET_ITEM(items, i);
        if ((i && OUT_TEXT(out, ",") < 0))
            return -1;
        Py_INCREF(item);
        int failed = encode(item, depth + 1, seen, out);
        Py_DECREF(item);
        if (failed < 0)
            return -1;
    }
    if (total > count && ((count && OUT_TEXT(out, ",") < 0) || out_cut(out, total - count) < 0))
        return -1;
    return OUT_TEXT(out, "]");
}

/* ValueEncoder._items of an exact list or tuple, or of a list subclass ``subclass`` shown
 * as its items (NULL for the exact types). */
static int
encode_sequence(PyObject *value, int is_list, PyTypeObject *subclass, long long depth,
                PyObject *seen, Out *out)
{
    Py_ssize_t total = Py_SIZE(value);
    Py_ssize_t count = total <= items_limit ? total : (Py_ssize_t)items_limit;
    /* A list is read from a copy of its first items (as list.__getitem__ gives): the Python
     * encoder called for an item may let another thread change it. */
    PyObject *items = is_list ? PyList_GetSlice(value, 0, count) : Py_NewRef(value);
    if (items == NULL)
        return -1;
    int failed;
    if (is_list) {
        failed = OUT_TEXT(out, "{\"kind\":\"Sequence\",") < 0
            || encode_elements(items, count, total, depth, seen, out) < 0
            || OUT_TEXT(out, ",\"is_slice\":false") < 0;
        long long type_id = list_type;
        /* A subclass's type is interned after its items' types, as in Python. */
        failed = failed || (subclass != NULL
                            && cached_type_id(sequence_types, subclass, sequence_type_of,
                                              &type_id) < 0)
            || out_type_end(out, type_id) < 0;
    }
    else
        failed = OUT_TEXT(out, "{\"kind\":\"Tuple\",") < 0
            || encode_elements(items, count, total, depth, seen, out) < 0
            || out_type_end(out, tuple_type) < 0;
    Py_DECREF(items);
    return failed ? -1 : 0;
}

/* One (key, item) element of a dict: the item is encoded first (as the Python encoder
 * does, which matters for the node budget and ``seen``), written after the key. */
static int
encode_entry(PyObject *key, PyObject *item, long long depth, PyObject *seen, Out *out)
{
    Out shown = {NULL, 0, 0};
    int failed = -1;
    int secret = 0;
    if (is_secret != Py_None && PyUnicode_CheckExact(key)) {
        PyObject *answer = PyObject_CallOneArg(is_secret, key);
        if (answer == NULL)
            goto done;
        secret = PyObject_IsTrue(answer);
        Py_DECREF(answer);
        if (secret < 0)
            goto done;
    }
    if (secret ? out_bytes(&shown, PyObject_CallNoArgs(redacted)) < 0
            : encode(item, depth + 1, seen, &shown) < 0)
        goto done;
    if (OUT_TEXT(out, "{\"kind\":\"Tuple\",\"type_id\":") < 0
            || out_number(out, tuple_type) < 0 || OUT_TEXT(out, ",\"elements\":[") < 0
            || encode(key, depth + 1, seen, out) < 0 || OUT_TEXT(out, ",") < 0
            || out_write(out, shown.data, shown.size) < 0 || OUT_TEXT(out, "]}") < 0)
        goto done;
    failed = 0;
done:
    PyMem_Free(shown.data);
    return failed;
}

/* ValueEncoder._mapping of an exact dict. */
static int
encode_mapping(PyObject *value, long long depth, PyObject *seen, Out *out)
{
    Py_ssize_t total = PyDict_GET_SIZE(value), position = 0, index = 0;
    Py_ssize_t limit = total <= items_limit ? total : (Py_ssize_t)items_limit;
    if (depth && spend(seen, limit, &limit) < 0)
        return -1;
    PyObject *key, *item;
    if (OUT_TEXT(out, "{\"kind\":\"Sequence\",\"elements\":[") < 0)
        return -1;
    while (PyDict_Next(value, &position, &key, &item)) {
        if (index && OUT_TEXT(out, ",") < 0)
            return -1;
        if (index == total) {  /* as dict's iterator: same size, other keys */
            PyErr_SetString(PyExc_RuntimeError, "dictionary keys changed during iteration");
            return -1;
        }
        if (index == limit) {
            if (out_cut(out, total - index) < 0)
                return -1;
            break;
        }
        Py_INCREF(key);
        Py_INCREF(item);
        int failed = encode_entry(key, item, depth, seen, out);
        Py_DECREF(key);
        Py_DECREF(item);
        if (failed < 0)
            return -1;
        if (PyDict_GET_SIZE(value) != total) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
            return -1;
        }
        index++;
    }
    if (OUT_TEXT(out, "],\"is_slice\":false") < 0)
        return -1;
    return out_type_end(out, dict_type);
}

/* The Struct type id of a plain object's instance dict ``fields`` shown as it is, or None
 * (borrowed from the cache; NULL on error); ``*names`` (a new reference, on success): the
 * field names it was made for, which the values written must still have. */
static PyObject *
struct_type_of(PyTypeObject *cls, PyObject *fields, PyObject **names)
{
    *names = PyTuple_New(PyDict_GET_SIZE(fields));
    if (*names == NULL)
        return NULL;
    Py_ssize_t position = 0, index = 0;
    PyObject *name, *item;
    while (PyDict_Next(fields, &position, &name, &item)) {
        if (!PyUnicode_CheckExact(name)) {  /* hashing the key would run its __hash__ */
            Py_CLEAR(*names);
            return Py_None;  /* as ValueEncoder.struct_type says */
        }
        PyTuple_SET_ITEM(*names, index++, Py_NewRef(name));
    }
    PyObject *key = PyTuple_Pack(2, (PyObject *)cls, *names);
    if (key == NULL) {
        Py_CLEAR(*names);
        return NULL;
    }
    PyObject *known = PyDict_GetItemWithError(struct_types, key);
    if (known == NULL && !PyErr_Occurred()) {
        if (PyDict_GET_SIZE(struct_types) > CLASS_CACHE_LIMIT)
            PyDict_Clear(struct_types);
        PyObject *made = PyObject_CallFunctionObjArgs(struct_type, (PyObject *)cls,
                                                      PyTuple_GET_ITEM(key, 1), NULL);
        if (made != NULL && PyDict_SetItem(struct_types, key, made) == 0)
            known = made;  /* now held by the cache */
        Py_XDECREF(made);
    }
    Py_DECREF(key);
    if (known == NULL)
        Py_CLEAR(*names);
    return known;
}

/* The "<T object>" Raw record (bytes, a new reference) of a plain object of ``cls``, the
 * same for every instance: cached from the Python encoder's at the depth limit (which
 * only marks ``value`` in ``seen`` as shown without contents, if it is not there). */
static PyObject *
object_raw(PyObject *value, PyTypeObject *cls, PyObject *seen)
{
    PyObject *known = PyDict_GetItemWithError(object_raws, (PyObject *)cls);
    if (known != NULL)
        return Py_NewRef(known);
    if (PyErr_Occurred())
        return NULL;
    Out made = {NULL, 0, 0};
    int failed = encode_fallback(value, depth_limit, seen, &made);
    PyObject *record = failed ? NULL : PyBytes_FromStringAndSize(made.data, made.size);
    PyMem_Free(made.data);
    if (record == NULL)
        return NULL;
    if (PyDict_GET_SIZE(object_raws) > CLASS_CACHE_LIMIT)
        PyDict_Clear(object_raws);
    if (PyDict_SetItem(object_raws, (PyObject *)cls, record) < 0)
        Py_CLEAR(record);
    return record;
}

/* ValueEncoder._object's common case (the Struct of an instance dict of str names, none a
 * secret, at most ``items`` of them) and the same object at the depth limit; 1 when
 * ``value`` is not that case or is shown as a Reference (the Python encoder writes those). */
static int
encode_object(PyObject *value, PyTypeObject *cls, long long depth, PyObject *seen, Out *out)
{
    PyObject *getter;
    long long left;
    if (cached(plain, cls, plain_of, &getter) < 0)
        return -1;
    if (getter == Py_None)
        return 1;
    if (nodes_left(seen, &left) < 0)
        return -1;
    if (depth >= depth_limit || left <= 0) {  /* "<T object>": one record per class */
        PyObject *record = object_raw(value, cls, seen);
        int failed = record == NULL || mark_seen(value, seen) < 0
            || out_write(out, PyBytes_AS_STRING(record), PyBytes_GET_SIZE(record)) < 0;
        Py_XDECREF(record);
        return failed ? -1 : 0;
    }
    PyObject *key = PyLong_FromVoidPtr(value);
    if (key == NULL)
        return -1;
    PyObject *known = PyDict_GetItemWithError(seen, key);
    int shown = known == NULL ? (PyErr_Occurred() ? -1 : 0) : PyObject_IsTrue(known);
    if (shown != 0) {
        Py_DECREF(key);
        if (shown < 0)
            return -1;
        PyObject *record = object_raw(value, cls, seen);
        int failed = record == NULL || out_reference(out, value, cls, PyBytes_AS_STRING(record),
                                                     PyBytes_GET_SIZE(record)) < 0;
        Py_XDECREF(record);
        return failed ? -1 : 0;
    }
    PyObject *fields = PyObject_CallFunctionObjArgs(getter, value, (PyObject *)cls, NULL);
    if (fields == NULL) {
        Py_DECREF(key);
        return -1;
    }
    int result = 1;
    PyObject *type_id = NULL, *names = NULL;
    if (!PyDict_CheckExact(fields) || PyDict_GET_SIZE(fields) > items_limit)
        goto done;
    /* Borrowed from the cache, which the fields' encodings below may change. */
    type_id = Py_XNewRef(struct_type_of(cls, fields, &names));
    result = type_id == NULL ? -1 : 1;
    if (type_id == NULL || type_id == Py_None)
        goto done;
    result = -1;
    Py_ssize_t total = PyTuple_GET_SIZE(names), ignored;
    if (PyDict_SetItem(seen, key, Py_True) < 0)
        goto done;
    PyObject *namespace_key = PyLong_FromVoidPtr(fields);
    if (namespace_key == NULL)
        goto done;
    known = PyDict_SetDefault(seen, namespace_key, Py_False);  /* stores change the object */
    Py_DECREF(namespace_key);
    if (known == NULL || (depth && spend(seen, total, &ignored) < 0)
            || OUT_TEXT(out, "{\"kind\":\"Struct\",\"field_values\":[") < 0)
        goto done;
    Py_ssize_t position = 0, index = 0;
    PyObject *name, *item;
    while (PyDict_Next(fields, &position, &name, &item)) {
        /* Another thread or a finaliser changed the fields since their names were read: the
         * values would not be the type's (the Python encoder reads them all at once). */
        if (index >= total || PyTuple_GET_ITEM(names, index) != name) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary keys changed during iteration");
            goto done;
        }
        if (index++ && OUT_TEXT(out, ",") < 0)
            goto done;
        Py_INCREF(item);
        int failed = encode(item, depth + 1, seen, out);
        Py_DECREF(item);
        if (failed < 0)
            goto done;
        if (PyDict_GET_SIZE(fields) != total) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
            goto done;
        }
    }
    if (index != total) {
        PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
        goto done;
    }
    long long number = PyLong_AsLongLong(type_id);
    if ((number == -1 && PyErr_Occurred()) || OUT_TEXT(out, "]") < 0
            || out_type_end(out, number) < 0)
        goto done;
    result = 0;
done:
    Py_XDECREF(type_id);
    Py_XDECREF(names);
    Py_DECREF(fields);
    Py_DECREF(key);
    return result;
}

/* ValueEncoder.raw of a function, builtin function, bound method, module or class (the
 * text that names it, the type id of its type's Raw records), and the marks in ``seen``
 * ValueEncoder._encode makes for it: 0, 1 when the text is not ASCII (the Python encoder
 * makes it safe), -1 on error. */
static int
encode_raw(PyObject *value, PyTypeObject *cls, PyObject *seen, Out *out)
{
    const char *kind = "function";
    PyObject *name;
    if (mark_seen(value, seen) < 0)
        return -1;
    if (cls == &PyFunction_Type)
        name = plain_text(((PyFunctionObject *)value)->func_qualname);
    else if (cls == &PyCFunction_Type) {
        PyObject *owner = PyCFunction_GET_SELF(value);
        if (mark_seen(owner == NULL ? Py_None : owner, seen) < 0)
            return -1;
        PyObject *qualname = PyObject_GetAttr(value, qualname_name);
        name = qualname == NULL ? NULL : plain_text(qualname);
        Py_XDECREF(qualname);
    }
    else if (cls == &PyMethod_Type) {
        kind = "bound method";
        PyObject *function = PyMethod_GET_FUNCTION(value);
        name = Py_TYPE(function) == &PyFunction_Type
            ? plain_text(((PyFunctionObject *)function)->func_qualname)
            : PyUnicode_FromString("?");
    }
    else if (cls == &PyModule_Type) {
        kind = "module";
        name = module_name(value);
    }
    else {
        kind = "class";
        name = type_name(value);
    }
    if (name == NULL)
        return -1;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(name) < 0) {
        Py_DECREF(name);
        return -1;
    }
#endif
    PyObject *text = PyUnicode_IS_ASCII(name)
        ? PyUnicode_FromFormat("<%s %U>", kind, name) : NULL;
    Py_DECREF(name);
    if (text == NULL)
        return PyErr_Occurred() ? -1 : 1;
    long long number;
    int failed = cached_type_id(raw_types, cls, raw_type_of, &number) < 0
        || OUT_TEXT(out, "{\"kind\":\"Raw\",\"r\":") < 0 || out_ascii(out, text) < 0
        || out_type_end(out, number) < 0;
    Py_DECREF(text);
    return failed ? -1 : 0;
}

/* ValueEncoder._named_tuple, once the Python encoder has made the first Struct of its class
 * and field names (it interns the type after the fields' types, so it makes the first one;
 * its type id is then taken from struct_type into the cache): 0, 1 for what the Python
 * encoder writes (the first one, a Reference, the Raw at the depth limit, names that are
 * not all str, name a secret or do not match the items), -1 on error. */
static int
encode_named_tuple(PyObject *value, PyTypeObject *cls, long long depth, PyObject *seen,
                   Out *out)
{
    PyObject *names = PyObject_CallFunctionObjArgs(class_attribute, (PyObject *)cls,
                                                   fields_name, NULL);
    if (names == NULL)
        return -1;
    int result = 1;
    PyObject *key = NULL, *type_id = NULL;
    Py_ssize_t total = PyTuple_GET_SIZE(value), ignored;
    if (!PyTuple_CheckExact(names) || PyTuple_GET_SIZE(names) != total)
        goto done;
    for (Py_ssize_t i = 0; i < total; i++)
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i)))
            goto done;  /* hashing the key would run its __hash__ */
    result = -1;
    key = PyTuple_Pack(2, (PyObject *)cls, names);
    if (key == NULL)
        goto done;
    type_id = Py_XNewRef(PyDict_GetItemWithError(struct_types, key));
    if (type_id == NULL) {
        if (PyErr_Occurred())
            goto done;
        Py_ssize_t start = out->size;
        if (encode_fallback(value, depth, seen, out) < 0)
            goto done;
        result = 0;
        static const char shown[] = "{\"kind\":\"Struct\"";
        if (out->size - start < (Py_ssize_t)sizeof(shown) - 1
                || memcmp(out->data + start, shown, sizeof(shown) - 1) != 0)
            goto done;  /* not shown in full: the type may not be interned yet */
        if (PyDict_GET_SIZE(struct_types) > CLASS_CACHE_LIMIT)
            PyDict_Clear(struct_types);
        PyObject *made = PyObject_CallFunctionObjArgs(struct_type, (PyObject *)cls, names,
                                                      NULL);
        if (made == NULL || PyDict_SetItem(struct_types, key, made) < 0)
            result = -1;
        Py_XDECREF(made);
        goto done;
    }
    result = 1;
    if (type_id == Py_None)
        goto done;
    int here = container_here(value, depth, seen);
    result = here < 0 ? -1 : 1;
    if (here != 0)
        goto done;
    result = -1;
    if ((depth && spend(seen, total, &ignored) < 0)
            || OUT_TEXT(out, "{\"kind\":\"Struct\",\"field_values\":[") < 0)
        goto done;
    for (Py_ssize_t i = 0; i < total; i++) {
        PyObject *item = PyTuple_GET_ITEM(value, i);
        if (i && OUT_TEXT(out, ",") < 0)
            goto done;
        Py_INCREF(item);
        int failed = encode(item, depth + 1, seen, out);
        Py_DECREF(item);
        if (failed < 0)
            goto done;
    }
    long long number = PyLong_AsLongLong(type_id);
    if ((number == -1 && PyErr_Occurred()) || OUT_TEXT(out, "]") < 0
            || out_type_end(out, number) < 0)
        goto done;
    result = 0;
done:
    Py_XDECREF(type_id);
    Py_XDECREF(key);
    Py_DECREF(names);
    return result;
}

/* 0: a container to show in full here, 2: at the depth limit or out of budget (shown as
 * a Raw), 1: a Reference (the Python encoder writes it). */
static int
container_here(PyObject *value, long long depth, PyObject *seen)
{
    long long left;
    if (nodes_left(seen, &left) < 0)
        return -1;
    if (depth >= depth_limit || left <= 0)
        return 2;
    int reference = mark_shown(value, seen);
    return reference < 0 ? -1 : reference;
}

/* ValueEncoder._encode, writing the record to ``out``: 0, or -1 with an exception. */
static int
encode(PyObject *value, long long depth, PyObject *seen, Out *out)
{
    PyTypeObject *cls = Py_TYPE(value);
    if (value == Py_None)
        return OUT_TEXT(out, "{\"kind\":\"None\",\"type_id\":0}");
    if (cls == &PyBool_Type) {
        if (value == Py_True ? OUT_TEXT(out, "{\"kind\":\"Bool\",\"b\":true") < 0
                : OUT_TEXT(out, "{\"kind\":\"Bool\",\"b\":false") < 0)
            return -1;
        return out_type_end(out, bool_type);
    }
    if (cls == &PyLong_Type) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow)
            return encode_fallback(value, depth, seen, out);  /* a BigInt */
        if (number == -1 && PyErr_Occurred())
            return -1;
        if (OUT_TEXT(out, "{\"kind\":\"Int\",\"i\":") < 0 || out_number(out, number) < 0)
            return -1;
        return out_type_end(out, int_type);
    }
    if (cls == &PyFloat_Type) {
        double number = PyFloat_AS_DOUBLE(value);
        if (OUT_TEXT(out, "{\"kind\":\"Float\",\"f\":\"") < 0)
            return -1;
        int failed;
        if (isnan(number))
            failed = OUT_TEXT(out, "NaN");
        else if (isinf(number))
            failed = number > 0 ? OUT_TEXT(out, "inf") : OUT_TEXT(out, "-inf");
        else {  /* repr(float) */
            char *text = PyOS_double_to_string(number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (text == NULL)
                return -1;
            failed = out_write(out, text, (Py_ssize_t)strlen(text));
            PyMem_Free(text);
        }
        if (failed < 0 || OUT_TEXT(out, "\"") < 0)
            return -1;
        return out_type_end(out, float_type);
    }
    if (cls == &PyUnicode_Type) {
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(value) < 0)
            return -1;
#endif
        if (!PyUnicode_IS_ASCII(value) || PyUnicode_GET_LENGTH(value) > string_limit)
            return encode_fallback(value, depth, seen, out);  /* cut or made safe */
        if (OUT_TEXT(out, "{\"kind\":\"String\",\"text\":") < 0 || out_ascii(out, value) < 0)
            return -1;
        return out_type_end(out, str_type);
    }
    if (depth > NESTING_LIMIT) {  /* speedups_encode then asks the Python encoder */
        PyErr_SetString(PyExc_RecursionError, "nested deeper than the C encoder goes");
        return -1;
    }
    return encode_container(value, cls, depth, seen, out);
}

/* encode() of what is not a scalar. */
static int
encode_container(PyObject *value, PyTypeObject *cls, long long depth, PyObject *seen,
                 Out *out)
{
    int here;
    if (cls == &PyList_Type || cls == &PyTuple_Type || cls == &PyDict_Type) {
        here = container_here(value, depth, seen);
        if (here == 0)
            return cls == &PyDict_Type ? encode_mapping(value, depth, seen, out)
                : encode_sequence(value, cls == &PyList_Type, NULL, depth, seen, out);
        if (here == 2)
            return mark_seen(value, seen) < 0 ? -1 : out_container_raw(out, value, cls);
        if (here == 1) {
            Out raw = {NULL, 0, 0};
            int failed = out_container_raw(&raw, value, cls) < 0
                || out_reference(out, value, cls, raw.data, raw.size) < 0;
            PyMem_Free(raw.data);
            return failed ? -1 : 0;
        }
    }
    else if (PyList_Check(value)) {
        /* A subclass shown as its items (not an enum, a class of ours, ...); its Raw at the
         * limit and its References are the Python encoder's. */
        int shape = shape_fill(cls);
        if (shape < 0)
            return -1;
        here = shape == SHAPE_ITEMS ? container_here(value, depth, seen) : 1;
        if (here == 0)
            return encode_sequence(value, 1, cls, depth, seen, out);
    }
    else if (cls == &PyFunction_Type || cls == &PyCFunction_Type || cls == &PyMethod_Type
             || cls == &PyModule_Type)
        here = encode_raw(value, cls, seen, out);
    else if (PyType_Check(value)) {  /* a class, shown as a Raw unless its metaclass is ours */
        int shape = shape_fill(cls);
        if (shape < 0)
            return -1;
        here = shape == SHAPE_RAW ? encode_raw(value, cls, seen, out) : 1;
    }
    else if (PyTuple_Check(value)) {
        int shape = shape_fill(cls);
        if (shape < 0)
            return -1;
        here = shape == SHAPE_NAMED_TUPLE ? encode_named_tuple(value, cls, depth, seen, out) : 1;
    }
    else
        here = encode_object(value, cls, depth, seen, out);
    if (here < 0)
        return -1;
    return here ? encode_fallback(value, depth, seen, out) : 0;
}

static PyObject *
speedups_encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (struct_types == NULL || shapes == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() and configure_encoder() come first");
        return NULL;
    }
    if (nargs != 2 || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode(value, seen: dict)");
        return NULL;
    }
    PyObject *value = args[0], *seen = args[1];
    PyObject *budget = PyLong_FromLongLong(nodes_limit);
    if (budget == NULL)
        return NULL;
    int failed = PyDict_SetItem(seen, budget_key, budget);
    Py_DECREF(budget);
    if (failed < 0)
        return NULL;
    Out out = {NULL, 0, 0};
    PyObject *result = NULL;
    if (encode(value, 0, seen, &out) == 0)
        result = PyBytes_FromStringAndSize(out.data, out.size);
    PyMem_Free(out.data);
    if (result == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        /* What the Python encoder makes of it (an Error record, for the same cause). */
        PyErr_Clear();
        PyDict_Clear(seen);
        result = PyObject_CallFunctionObjArgs(whole, value, seen, NULL);
    }
    return result;
}

static PyObject *
speedups_configure_encoder(PyObject *module, PyObject *args)
{
    PyObject *fallback_, *whole_, *struct_type_, *raw_type_of_, *sequence_type_of_;
    PyObject *is_secret_, *redacted_;
    long long ids[8], string_limit_, nodes_limit_;
    if (!PyArg_ParseTuple(args, "OOOOOOO(LLLLLLLL)LL:configure_encoder", &fallback_, &whole_,
                          &struct_type_, &raw_type_of_, &sequence_type_of_, &is_secret_,
                          &redacted_, &ids[0],
                          &ids[1], &ids[2], &ids[3], &ids[4], &ids[5], &ids[6], &ids[7],
                          &string_limit_, &nodes_limit_))
        return NULL;
    PyObject *new_types = PyDict_New(), *new_raw_types = PyDict_New();
    PyObject *new_object_raws = PyDict_New(), *new_sequence_types = PyDict_New();
    if (new_types == NULL || new_raw_types == NULL || new_object_raws == NULL
            || new_sequence_types == NULL) {
        Py_XDECREF(new_types);
        Py_XDECREF(new_raw_types);
        Py_XDECREF(new_object_raws);
        Py_XDECREF(new_sequence_types);
        return NULL;
    }
    Py_XSETREF(sequence_types, new_sequence_types);
    Py_XSETREF(sequence_type_of, Py_NewRef(sequence_type_of_));
    Py_XSETREF(struct_types, new_types);
    Py_XSETREF(raw_types, new_raw_types);
    Py_XSETREF(object_raws, new_object_raws);
    Py_XSETREF(raw_type_of, Py_NewRef(raw_type_of_));
    Py_XSETREF(fallback, Py_NewRef(fallback_));
    Py_XSETREF(whole, Py_NewRef(whole_));
    Py_XSETREF(struct_type, Py_NewRef(struct_type_));
    Py_XSETREF(is_secret, Py_NewRef(is_secret_));
    Py_XSETREF(redacted, Py_NewRef(redacted_));
    int_type = ids[0];
    bool_type = ids[1];
    float_type = ids[2];
    str_type = ids[3];
    list_type = ids[4];
    tuple_type = ids[5];
    dict_type = ids[6];
    raw_type = ids[7];
    string_limit = string_limit_;
    nodes_limit = nodes_limit_;
    Py_RETURN_NONE;
}

static PyObject *
speedups_walk(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (shapes == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return NULL;
    }
    if (nargs != 5 || !PyList_CheckExact(args[2]) || !PyList_CheckExact(args[3])
            || !PyDict_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError, "walk(value, depth, ids: list, held: list, seen: dict)");
        return NULL;
    }
    long long depth = PyLong_AsLongLong(args[1]);
    if (depth == -1 && PyErr_Occurred())
        return NULL;
    Sink sink = {args[2], args[3], 0};
    int result = walk(args[0], depth, &sink, args[4]);
    if (result < 0)
        return NULL;
    return PyBool_FromLong(result);
}

static PyObject *
speedups_same(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (shapes == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return NULL;
    }
    if (nargs != 4 || !PyList_CheckExact(args[2]) || !PyDict_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "same(value, depth, ids: list, seen: dict)");
        return NULL;
    }
    long long depth = PyLong_AsLongLong(args[1]);
    if (depth == -1 && PyErr_Occurred())
        return NULL;
    Sink sink = {args[2], NULL, 0};
    int result = walk(args[0], depth, &sink, args[3]);
    if (result < 0)
        return NULL;
    return PyBool_FromLong(result == 1 && sink.at == PyList_GET_SIZE(args[2]));
}

static PyObject *
speedups_configure(PyObject *module, PyObject *args)
{
    PyObject *keep, *shape_of_, *plain_of_, *first_items_, *class_attribute_, *walk_raw_;
    PyObject *budget_key_;
    long long depth_limit_, items_limit_;
    if (!PyArg_ParseTuple(args, "O!OOOOOLLU:configure", &PyFrozenSet_Type, &keep, &shape_of_,
                          &plain_of_, &first_items_, &class_attribute_, &walk_raw_,
                          &depth_limit_, &items_limit_, &budget_key_))
        return NULL;
    /* The scalars compared by identity must be the ones is_scalar() knows. */
    PyTypeObject *scalars[] = {&PyLong_Type, &PyUnicode_Type, &PyFloat_Type, &PyBool_Type,
                               Py_TYPE(Py_None), &PyBytes_Type, &PyComplex_Type,
                               &PyRange_Type};
    Py_ssize_t known = (Py_ssize_t)(sizeof(scalars) / sizeof(scalars[0]));
    if (PySet_GET_SIZE(keep) != known) {
        PyErr_SetString(PyExc_ValueError, "the scalar types differ from the walk's");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < known; i++) {
        int found = PySet_Contains(keep, (PyObject *)scalars[i]);
        if (found <= 0) {
            if (found == 0)
                PyErr_SetString(PyExc_ValueError, "the scalar types differ from the walk's");
            return NULL;
        }
    }
    PyObject *new_shapes = PyDict_New(), *new_plain = PyDict_New();
    if (new_shapes == NULL || new_plain == NULL) {
        Py_XDECREF(new_shapes);
        Py_XDECREF(new_plain);
        return NULL;
    }
    Py_XSETREF(shapes, new_shapes);
    Py_XSETREF(plain, new_plain);
    Py_XSETREF(shape_of, Py_NewRef(shape_of_));
    Py_XSETREF(plain_of, Py_NewRef(plain_of_));
    Py_XSETREF(first_items, Py_NewRef(first_items_));
    Py_XSETREF(class_attribute, Py_NewRef(class_attribute_));
    Py_XSETREF(walk_raw, Py_NewRef(walk_raw_));
    Py_XSETREF(budget_key, Py_NewRef(budget_key_));
    depth_limit = depth_limit_;
    items_limit = items_limit_;
    Py_RETURN_NONE;
}


/* ---- the writer's loop: runs of pre-encoded records (writer.join_records) ------------ */

/* What join() takes as a thread: an int or None, whose comparisons and hash run no code
 * (so the records cannot change under it). */
static int
is_thread(PyObject *thread)
{
    return thread == Py_None || PyLong_CheckExact(thread);
}

/* open_calls.get(thread, 0) into *depth; -1 on error. */
static int
open_calls_of(PyObject *open_calls, PyObject *thread, Py_ssize_t *depth)
{
    *depth = 0;
    PyObject *known = PyDict_GetItemWithError(open_calls, thread);
    if (known == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyLong_CheckExact(known)) {
        PyErr_SetString(PyExc_TypeError, "open call counts must be ints");
        return -1;
    }
    *depth = PyLong_AsSsize_t(known);
    return *depth == -1 && PyErr_Occurred() ? -1 : 0;
}

/* open_calls[thread] + delta; -1 on error. */
static int
add_open_calls(PyObject *open_calls, PyObject *thread, Py_ssize_t delta)
{
    Py_ssize_t depth;
    if (open_calls_of(open_calls, thread, &depth) < 0)
        return -1;
    PyObject *updated = PyLong_FromSsize_t(depth + delta);
    if (updated == NULL)
        return -1;
    int result = PyDict_SetItem(open_calls, thread, updated);
    Py_DECREF(updated);
    return result;
}

static int
starts_with(PyObject *bytes, const char *prefix, Py_ssize_t length)
{
    return PyBytes_GET_SIZE(bytes) >= length
        && memcmp(PyBytes_AS_STRING(bytes), prefix, (size_t)length) == 0;
}

#define CALL_PREFIX "{\"Call\":"
#define RETURN_PREFIX "{\"Return\":"

static PyObject *
speedups_join(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[2])
            || !PyDict_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "join(records: list, start, lines: list,"
                        " open_calls: dict, main_thread, last_thread)");
        return NULL;
    }
    PyObject *records = args[0], *lines = args[2], *open_calls = args[3];
    PyObject *main_thread = args[4], *last_thread = args[5];
    Py_ssize_t at = PyLong_AsSsize_t(args[1]);
    if (at == -1 && PyErr_Occurred())
        return NULL;
    if (at < 0)
        at = 0;
    if (at > PyList_GET_SIZE(records))
        at = PyList_GET_SIZE(records);
    if (!is_thread(main_thread) || !is_thread(last_thread))
        return PyLong_FromSsize_t(at);  /* all left to the Python writer */
    for (; at < PyList_GET_SIZE(records); at++) {
        PyObject *record = PyList_GET_ITEM(records, at);
        /* Not a (thread, event) pair of the recorder's: the Python writer takes it. */
        if (!PyTuple_CheckExact(record) || PyTuple_GET_SIZE(record) != 2
                || !is_thread(PyTuple_GET_ITEM(record, 0)))
            break;
        PyObject *thread = PyTuple_GET_ITEM(record, 0), *event = PyTuple_GET_ITEM(record, 1);
        if (thread != Py_None && thread != last_thread) {
            int same = PyObject_RichCompareBool(thread, last_thread, Py_EQ);
            if (same < 0)
                return NULL;
            if (!same)
                break;
        }
        if (PyBytes_CheckExact(event)) {
            if (starts_with(event, CALL_PREFIX, 8)) {
                if (add_open_calls(open_calls, thread, 1) < 0)
                    return NULL;
            }
            else if (starts_with(event, RETURN_PREFIX, 10)) {
                Py_ssize_t depth;
                if (open_calls_of(open_calls, thread, &depth) < 0)
                    return NULL;
                int main = PyObject_RichCompareBool(thread, main_thread, Py_EQ);
                if (main < 0)
                    return NULL;
                if (depth <= (main ? 1 : 0))
                    continue;  /* no open call to end (see writer.py) */
                if (add_open_calls(open_calls, thread, -1) < 0)
                    return NULL;
            }
            if (PyList_Append(lines, event) < 0)
                return NULL;
        }
        else if (PyTuple_CheckExact(event)) {
            Py_ssize_t size = PyTuple_GET_SIZE(event), i;
            for (i = 0; i < size; i++) {
                if (!PyBytes_CheckExact(PyTuple_GET_ITEM(event, i)))
                    break;
            }
            if (i < size)
                break;
            for (i = 0; i < size; i++) {
                PyObject *part = PyTuple_GET_ITEM(event, i);
                if (starts_with(part, CALL_PREFIX, 8) && add_open_calls(open_calls, thread, 1) < 0)
                    return NULL;
                if (PyList_Append(lines, part) < 0)
                    return NULL;
            }
        }
        else
            break;
    }
    return PyLong_FromSsize_t(at);
}

static PyMethodDef speedups_methods[] = {
    {"walk", (PyCFunction)(void (*)(void))speedups_walk, METH_FASTCALL,
     "walk(value, depth, ids, held, seen) -> bool: probes._walk_python, in C."},
    {"same", (PyCFunction)(void (*)(void))speedups_same, METH_FASTCALL,
     "same(value, depth, ids, seen) -> bool: whether walk() would append exactly ``ids``"
     " (the ints and names of a fingerprint), without appending: it stops at the first"
     " difference."},
    {"configure", speedups_configure, METH_VARARGS,
     "configure(keep, shown_as, plain_instance_dict, first_items, class_attribute, walk_raw,"
     " depth, items, budget_key): the encoder's limits and the Python functions the walk"
     " asks; empties the walk's caches of classes."},
    {"encode", (PyCFunction)(void (*)(void))speedups_encode, METH_FASTCALL,
     "encode(value, seen) -> bytes: orjson.dumps(ValueEncoder.encode(value, 0, seen)), in C."},
    {"configure_encoder", speedups_configure_encoder, METH_VARARGS,
     "configure_encoder(fallback, whole, struct_type, raw_type_of, sequence_type_of,"
     " is_secret, redacted,"
     " type ids, string, nodes): the Python encoder's parts and limits (after configure())."},
    {"join", (PyCFunction)(void (*)(void))speedups_join, METH_FASTCALL,
     "join(records, start, lines, open_calls, main_thread, last_thread) -> int:"
     " writer.join_records, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "_ctinstrument_speedups",
    "The fingerprint walk of ctinstrument.probes in C (optional: the Python version is the"
    " reference and the fallback).", -1, speedups_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__ctinstrument_speedups(void)
{
    fields_name = PyUnicode_InternFromString("_fields");
    qualname_name = PyUnicode_InternFromString("__qualname__");
    name_name = PyUnicode_InternFromString("__name__");
    minus_one = PyLong_FromLong(-1);
    PyObject *type_dict = PyObject_GetAttrString((PyObject *)&PyType_Type, "__dict__");
    if (type_dict != NULL) {
        type_qualname = PyMapping_GetItemString(type_dict, "__qualname__");
        type_module = PyMapping_GetItemString(type_dict, "__module__");
        Py_DECREF(type_dict);
    }
    if (fields_name == NULL || qualname_name == NULL || name_name == NULL
            || minus_one == NULL || type_qualname == NULL || type_module == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&speedups_module);
    if (module != NULL && PyModule_AddIntConstant(module, "VERSION", 5) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
