/*
 * katcpx.codec._speedups: the two per-byte loops of the KATCP wire codec, in C.
 *
 * Escaping arguments when formatting a line, and splitting and unescaping a received line
 * (spec 5.1 sections 2.1 and 3.1), are the only codec steps that must look at every byte.
 * Pure Python does them as a chain of C-level bytes.replace passes, one per kind of escape;
 * here each is one pass. Everything else (names, message ids, caches, errors) stays in
 * Python. Both functions are fast paths: they return None whenever they are not certain,
 * and the pure-Python codec then decides, so results and error texts are the same with or
 * without this module (tests/test_speedups.py compares the two).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Longest line format_line builds; it gives up (None) above this. Bounding the running total
 * keeps the size sums from overflowing Py_ssize_t, which is reachable on 32-bit builds (a
 * list repeating one long argument: the wrapped size would be a small buffer, overrun by the
 * copy). Python then raises its own error for such a line. Unreachable on 64-bit builds. */
#define MAX_LINE (PY_SSIZE_T_MAX / 4)

/* Escape code (the byte after the backslash) of each special byte, 0 for plain bytes. */
static unsigned char escape_code[256];
/* The byte each escape code stands for; -1 for a code that is not an escape. */
static int unescape_byte[256];
/* Bytes that may never appear raw in a line: NUL, ESC, CR, LF. */
static unsigned char forbidden_raw[256];
/* Bytes of a well-formed head, ?name[mid]: the pure-Python codec words the errors. */
static unsigned char head_byte[256];

static void
init_tables(void)
{
    int i;
    for (i = 0; i < 256; i++) {
        escape_code[i] = 0;
        unescape_byte[i] = -1;
        forbidden_raw[i] = 0;
        head_byte[i] = (i >= 'A' && i <= 'Z') || (i >= 'a' && i <= 'z')
                       || (i >= '0' && i <= '9') || i == '-' || i == '[' || i == ']'
                       || i == '?' || i == '!' || i == '#';
    }
    escape_code['\\'] = '\\';
    escape_code[' '] = '_';
    escape_code[0] = '0';
    escape_code['\n'] = 'n';
    escape_code['\r'] = 'r';
    escape_code[0x1b] = 'e';
    escape_code['\t'] = 't';
    for (i = 0; i < 256; i++) {
        if (escape_code[i]) {
            unescape_byte[escape_code[i]] = i;
        }
    }
    unescape_byte['@'] = 256; /* the empty argument: no byte */
    forbidden_raw[0] = 1;
    forbidden_raw[0x1b] = 1;
    forbidden_raw['\r'] = 1;
    forbidden_raw['\n'] = 1;
}

PyDoc_STRVAR(format_line_doc,
"format_line(head, arguments, /)\n--\n\n"
"Return ``head`` plus each argument escaped and space-separated, plus ``\\n``.\n\n"
"``head`` is bytes (``?name`` or ``?name[mid]``), ``arguments`` a list of bytes; an\n"
"empty argument is written ``\\@``. Returns None if either is of another type.");

static PyObject *
format_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *head, *arguments, *item, *out;
    Py_ssize_t count, i, j, len, size;
    const unsigned char *src;
    char *dst;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "format_line() takes exactly 2 arguments");
        return NULL;
    }
    head = args[0];
    arguments = args[1];
    if (!PyBytes_CheckExact(head) || !PyList_CheckExact(arguments)) {
        Py_RETURN_NONE;
    }
    /* First pass: the exact size. No Python code runs between the passes (nothing here
     * releases the GIL or calls back), so the list cannot change under us. */
    count = PyList_GET_SIZE(arguments);
    size = PyBytes_GET_SIZE(head) + 1;
    if (size > MAX_LINE) {
        Py_RETURN_NONE;
    }
    for (i = 0; i < count; i++) {
        item = PyList_GET_ITEM(arguments, i);
        if (!PyBytes_CheckExact(item)) {
            Py_RETURN_NONE;
        }
        len = PyBytes_GET_SIZE(item);
        /* size <= MAX_LINE here, and one argument adds at most 2 * len + 3: checking len
         * first keeps every sum below 2 * MAX_LINE + 3, so none can overflow. */
        if (len > MAX_LINE - size) {
            Py_RETURN_NONE;
        }
        size += 1 + (len ? len : 2);
        src = (const unsigned char *)PyBytes_AS_STRING(item);
        for (j = 0; j < len; j++) {
            size += escape_code[src[j]] != 0;
        }
        if (size > MAX_LINE) {
            Py_RETURN_NONE;
        }
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        return NULL;
    }
    dst = PyBytes_AS_STRING(out);
    len = PyBytes_GET_SIZE(head);
    memcpy(dst, PyBytes_AS_STRING(head), len);
    dst += len;
    for (i = 0; i < count; i++) {
        item = PyList_GET_ITEM(arguments, i);
        len = PyBytes_GET_SIZE(item);
        src = (const unsigned char *)PyBytes_AS_STRING(item);
        *dst++ = ' ';
        if (len == 0) {
            *dst++ = '\\';
            *dst++ = '@';
            continue;
        }
        for (j = 0; j < len; j++) {
            unsigned char code = escape_code[src[j]];
            if (code) {
                *dst++ = '\\';
                *dst++ = (char)code;
            } else {
                *dst++ = (char)src[j];
            }
        }
    }
    *dst = '\n';
    return out;
}

PyDoc_STRVAR(split_line_doc,
"split_line(line, /)\n--\n\n"
"Split a line (without its end-of-line) into its head and unescaped arguments.\n\n"
"Returns ``[head, arg, ...]``: the head (``?name[mid]``) raw, for the caller to check, and\n"
"each argument unescaped. Separators are runs of spaces and tabs. Returns None for\n"
"anything the caller must look at closely: a line that is not exact bytes, is empty or\n"
"starts with white space, a raw NUL, ESC, CR or LF, a head holding a byte other than\n"
"``A-Za-z0-9-[]?!#``, or a bad escape.");

static PyObject *
split_line(PyObject *self, PyObject *line)
{
    const unsigned char *src, *end, *start;
    PyObject *parts, *token;
    Py_ssize_t len;
    char *dst, *dst0;
    int is_head = 1;

    if (!PyBytes_CheckExact(line)) {
        Py_RETURN_NONE;
    }
    len = PyBytes_GET_SIZE(line);
    src = (const unsigned char *)PyBytes_AS_STRING(line);
    end = src + len;
    if (len == 0 || src[0] == ' ' || src[0] == '\t') {
        Py_RETURN_NONE;
    }
    parts = PyList_New(0);
    if (parts == NULL) {
        return NULL;
    }
    while (src < end) {
        int escaped = 0;
        start = src;
        while (src < end && *src != ' ' && *src != '\t') {
            if (forbidden_raw[*src]) {
                goto give_up;
            }
            if (*src == '\\') {
                escaped = 1;
            }
            src++;
        }
        if (is_head) {
            /* Any other byte in the head is an error (or, for \v and \f, a separator to
             * bytes.split()): the pure-Python codec words it. */
            const unsigned char *p;
            for (p = start; p < src; p++) {
                if (!head_byte[*p]) {
                    goto give_up;
                }
            }
            token = PyBytes_FromStringAndSize((const char *)start, src - start);
            is_head = 0;
        } else if (!escaped) {
            token = PyBytes_FromStringAndSize((const char *)start, src - start);
        } else {
            const unsigned char *p;
            token = PyBytes_FromStringAndSize(NULL, src - start);
            if (token == NULL) {
                goto error;
            }
            dst0 = dst = PyBytes_AS_STRING(token);
            for (p = start; p < src; p++) {
                if (*p != '\\') {
                    *dst++ = (char)*p;
                    continue;
                }
                if (++p == src || unescape_byte[*p] < 0) {
                    Py_DECREF(token);
                    goto give_up;
                }
                if (unescape_byte[*p] < 256) {
                    *dst++ = (char)unescape_byte[*p];
                }
            }
            if (_PyBytes_Resize(&token, dst - dst0) < 0) {
                goto error;
            }
        }
        if (token == NULL) {
            goto error;
        }
        if (PyList_Append(parts, token) < 0) {
            Py_DECREF(token);
            goto error;
        }
        Py_DECREF(token);
        while (src < end && (*src == ' ' || *src == '\t')) {
            src++;
        }
    }
    return parts;

give_up:
    Py_DECREF(parts);
    Py_RETURN_NONE;
error:
    Py_DECREF(parts);
    return NULL;
}

static PyMethodDef speedups_methods[] = {
    {"format_line", (PyCFunction)(void (*)(void))format_line, METH_FASTCALL, format_line_doc},
    {"split_line", (PyCFunction)split_line, METH_O, split_line_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "katcpx.codec._speedups",
    "The per-byte loops of the KATCP wire codec in C (see katcpx.codec).",
    -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_tables();
    return PyModule_Create(&speedups_module);
}
