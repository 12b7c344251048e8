/*
 * _rekey: rows rendered by PostgreSQL's json_build_array(...) -> the JSON objects that
 * row_to_json(...) would have rendered, by putting the column names back in front of the
 * values.
 *
 * Why: on the source server json_build_array costs about two thirds of row_to_json per row
 * (row_to_json builds a composite row and escapes every key again for every row), and the
 * source server's JSON rendering is the largest single cost of a full-table read. Both
 * render each value with the same function, so the values are the server's exact text;
 * this module only finds where each value ends (strings, escapes, nesting) and copies it.
 * No library does this one byte-copying job, and in Python it would cost more than it saves.
 *
 * objects(rows, keys) -> list[bytes]
 *   rows: the fetched rows (tuples), whose first item is the json_build_array text (bytes);
 *   keys: the column names, each already a JSON string with its quotes (bytes).
 * Raises ValueError naming the row if a text is not an array of exactly len(keys) values.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef const unsigned char *cur;

#define MAX_DEPTH 512

static cur skip_ws(cur p, cur end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* The end of the JSON value at p (NULL if it is not one). Strings are skipped by their
 * escapes only: the server made them, so their content is valid. */
static cur value_end(cur p, cur end, int depth) {
    if (p >= end || depth > MAX_DEPTH) return NULL;
    switch (*p) {
    case '"':
        for (p++; p < end; p++) {
            if (*p == '\\') {
                p++;
            } else if (*p == '"') {
                return p + 1;
            }
        }
        return NULL;
    case '[':
    case '{': {
        unsigned char close = (*p == '[') ? ']' : '}';
        p = skip_ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (close == '}') { /* a key, then a colon */
                if (p >= end || *p != '"' || (p = value_end(p, end, depth + 1)) == NULL)
                    return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':') return NULL;
                p = skip_ws(p + 1, end);
            }
            if ((p = value_end(p, end, depth + 1)) == NULL) return NULL;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == close) return p + 1;
            return NULL;
        }
    }
    default: { /* number, true, false, null */
        cur start = p;
        while (p < end && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\t' &&
               *p != '\n' && *p != '\r')
            p++;
        return p > start ? p : NULL;
    }
    }
}

/* One row: "[v0, v1, ...]" -> {"k0":v0,"k1":v1,...}; NULL (no error set) if malformed. */
static PyObject *rekey(cur p, cur end, PyObject *keys, Py_ssize_t nkeys, Py_ssize_t keys_len) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, (end - p) + keys_len + 2 * nkeys + 2);
    if (out == NULL) return NULL;
    char *o = PyBytes_AS_STRING(out), *start = o;
    p = skip_ws(p, end);
    if (p >= end || *p != '[') goto malformed;
    p = skip_ws(p + 1, end);
    *o++ = '{';
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i);
        cur stop = value_end(p, end, 0);
        if (stop == NULL) goto malformed;
        if (i) *o++ = ',';
        memcpy(o, PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
        o += PyBytes_GET_SIZE(key);
        *o++ = ':';
        memcpy(o, p, (size_t)(stop - p));
        o += stop - p;
        p = skip_ws(stop, end);
        if (i + 1 < nkeys) {
            if (p >= end || *p != ',') goto malformed;
            p = skip_ws(p + 1, end);
        }
    }
    if (p >= end || *p != ']' || skip_ws(p + 1, end) != end) goto malformed;
    *o++ = '}';
    if (_PyBytes_Resize(&out, o - start) < 0) return NULL;
    return out;
malformed:
    Py_DECREF(out);
    return Py_NewRef(Py_None);
}

static PyObject *objects(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "objects(rows: list, keys: tuple[bytes, ...])");
        return NULL;
    }
    PyObject *rows = args[0], *keys = args[1];
    Py_ssize_t nkeys = PyTuple_GET_SIZE(keys), keys_len = 0, n = PyList_GET_SIZE(rows);
    if (nkeys == 0) {
        PyErr_SetString(PyExc_ValueError, "objects() needs at least one key");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be bytes");
            return NULL;
        }
        keys_len += PyBytes_GET_SIZE(key);
    }
    PyObject *result = PyList_New(n);
    if (result == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i), *text;
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) < 1 ||
            !PyBytes_Check(text = PyTuple_GET_ITEM(row, 0))) {
            PyErr_Format(PyExc_TypeError, "row %zd: expected a tuple starting with bytes", i);
            Py_DECREF(result);
            return NULL;
        }
        cur p = (cur)PyBytes_AS_STRING(text);
        PyObject *object = rekey(p, p + PyBytes_GET_SIZE(text), keys, nkeys, keys_len);
        if (object == Py_None) {
            Py_DECREF(object);
            PyErr_Format(PyExc_ValueError,
                         "row %zd of the batch is not a JSON array of %zd values: %.200s", i,
                         nkeys, PyBytes_AS_STRING(text));
            object = NULL;
        }
        if (object == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, object);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"objects", (PyCFunction)(void (*)(void))objects, METH_FASTCALL,
     "objects(rows, keys) -> list of JSON objects (bytes) from json_build_array rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rekey",
    "json_build_array rows -> row_to_json objects (the tap's read path, in C).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rekey(void) { return PyModule_Create(&module); }
