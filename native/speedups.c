/* _ctinstrument_speedups: the fingerprint walk of ctinstrument.probes in C.
 *
 * walk(value, depth, ids, held, seen) -> bool does what probes._walk_python does, append
 * for append: the same ints and names to the list ``ids``, the same objects to ``held``,
 * the same entries in the dict ``seen`` (ids of the containers and objects walked -> their
 * index, and the node budget under the configured key), the same result.  What it cannot
 * decide by itself it asks the Python functions given to configure(): how a class is shown
 * (values.shown_as), the getter of a plain instance __dict__ (values.plain_instance_dict),
 * the first items of a set, deque or subclass (values.first_items), a named tuple's
 * _fields (values.class_attribute), the Raw records other than functions and methods
 * (probes._walk_raw).  No code of the program runs: the containers are read through the
 * base types' own storage, as the Python version reads them through the base types' C
 * methods.  tests/test_speedups.py checks both versions against each other.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* How a class's instances are walked (what values.shown_as says of it). */
enum { SHAPE_UNKNOWN, SHAPE_RAW, SHAPE_ITEMS, SHAPE_NAMED_TUPLE, SHAPE_MAPPING,
       SHAPE_OBJECT, SHAPE_OPAQUE };

/* Caches keyed by class are emptied past this many classes (classes made at run time). */
#define CLASS_CACHE_LIMIT 10000

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

static int
append_new(PyObject *list, PyObject *item)
{
    if (item == NULL)
        return -1;
    int failed = PyList_Append(list, item);
    Py_DECREF(item);
    return failed;
}

static int
append_id(PyObject *ids, void *object)
{
    return append_new(ids, PyLong_FromVoidPtr(object));
}

/* A value shown by id and held (so that its id stays unique): a scalar, a name. */
static int
append_held(PyObject *ids, PyObject *held, PyObject *value)
{
    if (append_id(ids, value) < 0 || PyList_Append(held, value) < 0)
        return -1;
    return 1;
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

static int walk(PyObject *value, long long depth, PyObject *ids, PyObject *held,
                PyObject *seen);

static int
walk_raw_value(PyObject *value, PyTypeObject *cls, PyObject *ids, PyObject *held)
{
    if (cls == &PyFunction_Type)
        return append_held(ids, held, ((PyFunctionObject *)value)->func_qualname);
    if (cls == &PyMethod_Type) {
        PyObject *function = PyMethod_GET_FUNCTION(value);
        if (append_held(ids, held, function) < 0)
            return -1;
        if (Py_TYPE(function) == &PyFunction_Type)
            return append_held(ids, held, ((PyFunctionObject *)function)->func_qualname);
        return 1;
    }
    PyObject *result = PyObject_CallFunctionObjArgs(walk_raw, value, (PyObject *)cls, ids,
                                                    held, NULL);
    if (result == NULL)
        return -1;
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

static int
walk_sequence(PyObject *items, Py_ssize_t count, long long depth, PyObject *ids,
              PyObject *held, PyObject *seen)
{
    int is_list = PyList_Check(items);
    for (Py_ssize_t i = 0; i < count; i++) {
        /* A list read again at each item: a callback may have let another thread in. */
        if (i >= Py_SIZE(items))
            break;
        PyObject *item = is_list ? PyList_GET_ITEM(items, i) : PyTuple_GET_ITEM(items, i);
        Py_INCREF(item);
        int result = walk(item, depth + 1, ids, held, seen);
        Py_DECREF(item);
        if (result != 1)
            return result;
    }
    return 1;
}

static int
walk_items(PyObject *value, PyTypeObject *cls, long long depth, PyObject *ids,
           PyObject *held, PyObject *seen)
{
    PyObject *items;
    Py_ssize_t total;
    if (cls == &PyList_Type || cls == &PyTuple_Type) {
        items = Py_NewRef(value);
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
    int result = -1;
    Py_ssize_t count = total <= items_limit ? total : (Py_ssize_t)items_limit;
    if (append_new(ids, PyLong_FromSsize_t(total)) < 0
            || (depth && spend(seen, count, &count) < 0))
        goto done;
    result = walk_sequence(items, count, depth, ids, held, seen);
done:
    Py_DECREF(items);
    return result;
}

static int
walk_named_tuple(PyObject *value, PyTypeObject *cls, long long depth, PyObject *ids,
                 PyObject *held, PyObject *seen)
{
    PyObject *names = PyObject_CallFunctionObjArgs(class_attribute, (PyObject *)cls,
                                                   fields_name, NULL);
    if (names == NULL)
        return -1;
    Py_ssize_t total = PyTuple_GET_SIZE(value), ignored;
    int result = 0;
    if (!PyTuple_CheckExact(names) || PyTuple_GET_SIZE(names) != total)
        goto done;
    result = -1;
    if (append_held(ids, held, names) < 0 || (depth && spend(seen, total, &ignored) < 0))
        goto done;
    result = walk_sequence(value, total, depth, ids, held, seen);
done:
    Py_DECREF(names);
    return result;
}

/* The fields of a mapping or an instance __dict__ (``fields``, a dict): ``count`` of its
 * ``total`` shown. */
static int
walk_fields(PyObject *fields, Py_ssize_t total, Py_ssize_t count, long long depth,
            PyObject *ids, PyObject *held, PyObject *seen)
{
    Py_ssize_t position = 0;
    PyObject *name, *item;
    if (append_new(ids, PyLong_FromSsize_t(total)) < 0)
        return -1;
    if (count == total) {  /* all scalars: every name, then every value (as probes does) */
        int scalars = 1;
        while (scalars && PyDict_Next(fields, &position, &name, &item))
            scalars = is_scalar(Py_TYPE(name)) && is_scalar(Py_TYPE(item));
        if (scalars) {
            for (int pass = 0; pass < 2; pass++) {
                position = 0;
                while (PyDict_Next(fields, &position, &name, &item))
                    if (append_held(ids, held, pass ? item : name) < 0)
                        return -1;
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
        if (append_held(ids, held, name) < 0)
            return -1;
        Py_INCREF(item);
        int result = walk(item, depth + 1, ids, held, seen);
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
walk_mapping(PyObject *value, long long depth, PyObject *ids, PyObject *held,
             PyObject *seen)
{
    Py_ssize_t total = PyDict_GET_SIZE(value);
    Py_ssize_t count = total <= items_limit ? total : (Py_ssize_t)items_limit;
    if (depth && spend(seen, count, &count) < 0)
        return -1;
    return walk_fields(value, total, count, depth, ids, held, seen);
}

static int
walk_object(PyObject *value, PyTypeObject *cls, long long depth, PyObject *ids,
            PyObject *held, PyObject *seen)
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
    result = walk_fields(fields, total, count, depth, ids, held, seen);
done:
    Py_DECREF(fields);
    return result;
}

/* 1: walked (``ids`` describes ``value``), 0: ``value`` cannot be described, -1: error. */
static int
walk(PyObject *value, long long depth, PyObject *ids, PyObject *held, PyObject *seen)
{
    PyTypeObject *cls = Py_TYPE(value);
    if (is_scalar(cls))
        return append_held(ids, held, value);
    int shape = shape_fill(cls);
    if (shape < 0)
        return -1;
    if (shape == SHAPE_RAW)  /* a Raw record at any depth, never a Reference */
        return walk_raw_value(value, cls, ids, held);
    if (shape == SHAPE_UNKNOWN)
        return 0;
    long long left;
    if (nodes_left(seen, &left) < 0)
        return -1;
    if (depth >= depth_limit || left <= 0) {
        /* Shown as a Raw naming the type (and the length of a builtin container). */
        if (append_id(ids, cls) < 0)
            return -1;
        if (cls == &PyList_Type || cls == &PyTuple_Type || cls == &PyDict_Type
                || cls == &PySet_Type || cls == &PyFrozenSet_Type)
            return append_new(ids, PyLong_FromSsize_t(PyObject_Length(value))) < 0 ? -1 : 1;
        return 1;
    }
    PyObject *key = PyLong_FromVoidPtr(value);
    if (key == NULL)
        return -1;
    PyObject *index = PyDict_GetItemWithError(seen, key);
    if (index != NULL) {  /* shown as a Reference */
        Py_DECREF(key);
        return (PyList_Append(ids, minus_one) < 0 || PyList_Append(ids, index) < 0) ? -1 : 1;
    }
    int failed = PyErr_Occurred() != NULL;
    if (!failed) {
        PyObject *number = PyLong_FromSsize_t(PyDict_GET_SIZE(seen));
        failed = number == NULL || PyDict_SetItem(seen, key, number) < 0;
        Py_XDECREF(number);
    }
    Py_DECREF(key);
    if (failed || append_id(ids, cls) < 0)
        return -1;
    switch (shape) {
    case SHAPE_ITEMS:
        return walk_items(value, cls, depth, ids, held, seen);
    case SHAPE_NAMED_TUPLE:
        return walk_named_tuple(value, cls, depth, ids, held, seen);
    case SHAPE_MAPPING:
        return walk_mapping(value, depth, ids, held, seen);
    case SHAPE_OBJECT:
        return walk_object(value, cls, depth, ids, held, seen);
    default:  /* opaque: shown as <T object> */
        return 1;
    }
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
    int result = walk(args[0], depth, args[2], args[3], args[4]);
    if (result < 0)
        return NULL;
    return PyBool_FromLong(result);
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

static PyMethodDef speedups_methods[] = {
    {"walk", (PyCFunction)(void (*)(void))speedups_walk, METH_FASTCALL,
     "walk(value, depth, ids, held, seen) -> bool: probes._walk_python, in C."},
    {"configure", speedups_configure, METH_VARARGS,
     "configure(keep, shown_as, plain_instance_dict, first_items, class_attribute, walk_raw,"
     " depth, items, budget_key): the encoder's limits and the Python functions the walk"
     " asks; empties the walk's caches of classes."},
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
    minus_one = PyLong_FromLong(-1);
    if (fields_name == NULL || minus_one == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&speedups_module);
    if (module != NULL && PyModule_AddIntConstant(module, "VERSION", 1) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
