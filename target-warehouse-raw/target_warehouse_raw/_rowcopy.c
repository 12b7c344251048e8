/*
 * _rowcopy: one Singer RECORD line -> one line of PostgreSQL COPY text, in a single pass.
 *
 * Why hand-written C: the target's hot path is "parse a JSON line, check each value's JSON
 * type against the stream's schema, write the values as COPY text in column order". msgspec
 * does the parsing in C, but the per-column formatting it leaves to Python costs about 4 us
 * of a record's 6.5 us; no library turns JSON into COPY text. This module does exactly what
 * rows.RowEncoder's generated Python does, for the column kinds and values that are common,
 * and answers None for anything else (a duplicate key, an escaped key, a lone surrogate, a
 * NUL, invalid UTF-8, a value of a type the column does not allow, a number inside an array
 * that is not a plain integer, ...). None sends the line down the Python path, which is the
 * reference: the tests compare both paths' output on generated records.
 *
 * Plan fields (name, kind, flags, allowed):
 *   kind    K_STR / K_BOOL / K_INT: msgspec-typed str / bool / int columns;
 *           K_RAW_TEXT / K_RAW_JSON / K_RAW_ARRAY / K_RAW_BOOLEAN: msgspec.Raw columns with
 *           rows._raw_text / json_text / array_text / _boolean_raw as converter.
 *   flags   F_NULL_OK (typed: `base | None`), F_REQUIRED (a missing key is an error).
 *   allowed bit set of JSON types a Raw value may have (first-byte check); -1 = any.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { K_STR = 1, K_BOOL, K_INT, K_RAW_TEXT, K_RAW_JSON, K_RAW_ARRAY, K_RAW_BOOLEAN };
enum { F_NULL_OK = 1, F_REQUIRED = 2 };
enum { T_STRING = 1, T_NUMBER = 2, T_OBJECT = 4, T_ARRAY = 8, T_BOOLEAN = 16, T_NULL = 32 };

#define MAX_DEPTH 64

typedef const unsigned char *cur;

/* ---- output buffer ------------------------------------------------------------------- */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buffer;

static int buf_reserve(Buffer *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buffer *b, const void *src, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static inline int buf_byte(Buffer *b, char c) {
    if (b->len >= b->cap && buf_reserve(b, 1) < 0) return -1;
    b->data[b->len++] = c;
    return 0;
}

/* ---- JSON scanning ------------------------------------------------------------------- */

/* Result codes: OK, FALLBACK (the Python path decides), NOMEM (a Python error is set). */
enum { OK = 0, FALLBACK = 1, NOMEM = 2 };

static inline cur skip_ws(cur p, cur end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Length of a valid UTF-8 sequence starting at p (lead byte >= 0x80), or 0 if invalid:
 * overlong forms, surrogates and code points above U+10FFFF are refused, as Python does. */
static Py_ssize_t utf8_sequence(cur p, cur end) {
    unsigned c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (end - p >= 2 && (p[1] & 0xC0) == 0x80) return 2;
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

static int hex4(cur p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* How a string's characters are written. */
enum {
    MODE_SKIP,    /* validate only */
    MODE_COPY,    /* a COPY text field: \ LF CR TAB escaped (rows.text) */
    MODE_ELEMENT, /* inside a quoted array element, then COPY-escaped (rows._element) */
};

/* One decoded character (or a run of plain bytes) written in the given mode. */
static inline int put_char(Buffer *b, int mode, unsigned c) {
    const char *s = NULL;
    Py_ssize_t n = 0;
    switch (c) {
    case '\\': s = (mode == MODE_ELEMENT) ? "\\\\\\\\" : "\\\\"; n = (mode == MODE_ELEMENT) ? 4 : 2; break;
    case '"': if (mode == MODE_ELEMENT) { s = "\\\\\""; n = 3; } break;
    case '\n': s = "\\n"; n = 2; break;
    case '\r': s = "\\r"; n = 2; break;
    case '\t': s = "\\t"; n = 2; break;
    }
    if (s != NULL) return buf_put(b, s, n);
    return buf_byte(b, (char)c);
}

static int put_codepoint(Buffer *b, int mode, unsigned cp) {
    if (cp < 0x80) return put_char(b, mode, cp);
    char u[4];
    Py_ssize_t n;
    if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_put(b, u, n);
}

/* A JSON string at *pp (on its opening quote): validated, and written in `mode` unless
 * MODE_SKIP. FALLBACK on anything the Python path must judge: a raw control character
 * (invalid JSON), invalid UTF-8, U+0000 (strip_nul_characters decides), a lone surrogate. */
static int scan_string(cur *pp, cur end, Buffer *b, int mode) {
    cur p = *pp + 1;
    while (p < end) {
        cur run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
        if (p > run && mode != MODE_SKIP && buf_put(b, run, p - run) < 0) return NOMEM;
        if (p >= end) return FALLBACK;
        unsigned c = *p;
        if (c == '"') {
            *pp = p + 1;
            return OK;
        }
        if (c < 0x20) return FALLBACK;
        if (c >= 0x80) {
            Py_ssize_t n = utf8_sequence(p, end);
            if (n == 0) return FALLBACK;
            if (mode != MODE_SKIP && buf_put(b, p, n) < 0) return NOMEM;
            p += n;
            continue;
        }
        /* a backslash escape */
        if (end - p < 2) return FALLBACK;
        unsigned e = p[1], cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (end - p < 6 || hex4(p + 2, &cp) < 0) return FALLBACK;
            if (cp == 0) return FALLBACK;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return FALLBACK;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned low;
                if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &low) < 0 ||
                    low < 0xDC00 || low > 0xDFFF)
                    return FALLBACK;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            }
            p += 4;
            break;
        default:
            return FALLBACK;
        }
        p += 2;
        if (mode != MODE_SKIP && put_codepoint(b, mode, cp) < 0) return NOMEM;
    }
    return FALLBACK;
}

/* A JSON number at *pp: validated. `plain_integer` says it has no fraction or exponent. */
static int scan_number(cur *pp, cur end, int *plain_integer) {
    cur p = *pp;
    int integer = 1;
    if (p < end && *p == '-') p++;
    if (p >= end) return FALLBACK;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        return FALLBACK;
    }
    if (p < end && *p == '.') {
        integer = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') return FALLBACK;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return FALLBACK;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    *plain_integer = integer;
    *pp = p;
    return OK;
}

static int scan_literal(cur *pp, cur end, const char *word, Py_ssize_t n) {
    if (end - *pp < n || memcmp(*pp, word, (size_t)n) != 0) return FALLBACK;
    *pp += n;
    return OK;
}

/* Any JSON value at *pp, validated and skipped. */
static int skip_value(cur *pp, cur end, int depth) {
    cur p = *pp;
    int plain, rc;
    if (p >= end || depth > MAX_DEPTH) return FALLBACK;
    switch (*p) {
    case '"':
        rc = scan_string(&p, end, NULL, MODE_SKIP);
        break;
    case 't': rc = scan_literal(&p, end, "true", 4); break;
    case 'f': rc = scan_literal(&p, end, "false", 5); break;
    case 'n': rc = scan_literal(&p, end, "null", 4); break;
    case '[':
        p = skip_ws(p + 1, end);
        if (p < end && *p == ']') { p++; rc = OK; break; }
        for (;;) {
            if ((rc = skip_value(&p, end, depth + 1)) != OK) return rc;
            p = skip_ws(p, end);
            if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
            if (p < end && *p == ']') { p++; break; }
            return FALLBACK;
        }
        break;
    case '{':
        p = skip_ws(p + 1, end);
        if (p < end && *p == '}') { p++; rc = OK; break; }
        for (;;) {
            if (p >= end || *p != '"') return FALLBACK;
            if ((rc = scan_string(&p, end, NULL, MODE_SKIP)) != OK) return rc;
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return FALLBACK;
            p = skip_ws(p + 1, end);
            if ((rc = skip_value(&p, end, depth + 1)) != OK) return rc;
            p = skip_ws(p, end);
            if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
            if (p < end && *p == '}') { p++; break; }
            return FALLBACK;
        }
        break;
    default:
        rc = scan_number(&p, end, &plain);
    }
    if (rc == OK) *pp = p;
    return rc;
}

static int json_type(unsigned char first) {
    switch (first) {
    case '"': return T_STRING;
    case '{': return T_OBJECT;
    case '[': return T_ARRAY;
    case 't': case 'f': return T_BOOLEAN;
    case 'n': return T_NULL;
    default: return T_NUMBER;
    }
}

/* ---- value writers -------------------------------------------------------------------- */

/* rows.json_text: the value's JSON text, backslashes doubled, whitespace TAB/CR/LF as spaces. */
static int put_json_text(Buffer *b, cur start, cur stop) {
    if (buf_reserve(b, (stop - start) * 2) < 0) return NOMEM;
    char *out = b->data + b->len;
    for (cur p = start; p < stop; p++) {
        unsigned char c = *p;
        if (c == '\\') { *out++ = '\\'; *out++ = '\\'; }
        else if (c == '\t' || c == '\r' || c == '\n') *out++ = ' ';
        else *out++ = (char)c;
    }
    b->len = out - b->data;
    return OK;
}

/* rows.array_text for a JSON array at *pp: a PostgreSQL array literal, COPY-escaped. Only
 * strings, null, booleans, plain integers and nested arrays are taken; other elements (a
 * decimal, whose Python text form may differ from its JSON text; objects) fall back. */
static int put_array(cur *pp, cur end, Buffer *b, int depth) {
    cur p = skip_ws(*pp + 1, end);
    int rc, plain;
    if (depth > MAX_DEPTH) return FALLBACK;
    if (buf_byte(b, '{') < 0) return NOMEM;
    if (p < end && *p == ']') {
        p++;
    } else {
        for (;;) {
            if (p >= end) return FALLBACK;
            switch (*p) {
            case '"':
                if (buf_byte(b, '"') < 0) return NOMEM;
                if ((rc = scan_string(&p, end, b, MODE_ELEMENT)) != OK) return rc;
                if (buf_byte(b, '"') < 0) return NOMEM;
                break;
            case 'n':
                if (scan_literal(&p, end, "null", 4) != OK) return FALLBACK;
                if (buf_put(b, "NULL", 4) < 0) return NOMEM;
                break;
            case 't':
                if (scan_literal(&p, end, "true", 4) != OK) return FALLBACK;
                if (buf_put(b, "\"true\"", 6) < 0) return NOMEM;
                break;
            case 'f':
                if (scan_literal(&p, end, "false", 5) != OK) return FALLBACK;
                if (buf_put(b, "\"false\"", 7) < 0) return NOMEM;
                break;
            case '[':
                if ((rc = put_array(&p, end, b, depth + 1)) != OK) return rc;
                break;
            default: {
                cur start = p;
                if (scan_number(&p, end, &plain) != OK || !plain) return FALLBACK;
                if (p - start == 2 && start[0] == '-' && start[1] == '0') return FALLBACK;
                if (buf_byte(b, '"') < 0 || buf_put(b, start, p - start) < 0 ||
                    buf_byte(b, '"') < 0)
                    return NOMEM;
            }
            }
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                if (buf_byte(b, ',') < 0) return NOMEM;
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == ']') { p++; break; }
            return FALLBACK;
        }
    }
    if (buf_byte(b, '}') < 0) return NOMEM;
    *pp = p;
    return OK;
}

/* ---- the plan ------------------------------------------------------------------------ */

typedef struct {
    char *name;
    Py_ssize_t name_len;
    int kind, flags, allowed;
} Field;

typedef struct {
    PyObject_HEAD
    Field *fields;
    Py_ssize_t nfields;
    Buffer values;          /* field texts of the current record, in arrival order */
    Py_ssize_t *offsets;    /* per field: start in `values`, or -1 when absent */
    Py_ssize_t *lengths;
} RowPlan;

/* rows._raw_text: a string's own text, a number's JSON text, anything else its JSON text. */
static int put_raw_text(int type, cur *pp, cur end, Buffer *b) {
    cur p = *pp, start = p;
    int rc, plain;
    if (type == T_STRING) {
        rc = scan_string(&p, end, b, MODE_COPY);
    } else if (type == T_NUMBER) {
        if ((rc = scan_number(&p, end, &plain)) != OK) return rc;
        rc = buf_put(b, start, p - start) < 0 ? NOMEM : OK;
    } else {
        if ((rc = skip_value(&p, end, 0)) != OK) return rc;
        rc = put_json_text(b, start, p);
    }
    if (rc == OK) *pp = p;
    return rc;
}

/* One record value at *pp for field f, its COPY text appended to b. */
static int put_value(const Field *f, cur *pp, cur end, Buffer *b) {
    cur p = *pp, start = p;
    int rc, plain, type = json_type(*p);
    if (f->kind >= K_RAW_TEXT && f->allowed != -1 && !(f->allowed & type)) return FALLBACK;
    if (type == T_NULL) {
        if (scan_literal(&p, end, "null", 4) != OK) return FALLBACK;
        if (f->kind < K_RAW_TEXT && !(f->flags & F_NULL_OK)) return FALLBACK;
        if (buf_put(b, "\\N", 2) < 0) return NOMEM;
        *pp = p;
        return OK;
    }
    switch (f->kind) {
    case K_STR:
        if (type != T_STRING) return FALLBACK;
        rc = scan_string(&p, end, b, MODE_COPY);
        break;
    case K_BOOL:
        if (type != T_BOOLEAN) return FALLBACK;
        if (*p == 't') { rc = scan_literal(&p, end, "true", 4); if (rc == OK && buf_byte(b, 't') < 0) return NOMEM; }
        else { rc = scan_literal(&p, end, "false", 5); if (rc == OK && buf_byte(b, 'f') < 0) return NOMEM; }
        break;
    case K_INT:
        if (type != T_NUMBER) return FALLBACK;
        if ((rc = scan_number(&p, end, &plain)) != OK || !plain) return FALLBACK;
        if (p - start == 2 && start[0] == '-' && start[1] == '0') rc = buf_byte(b, '0') < 0 ? NOMEM : OK;
        else rc = buf_put(b, start, p - start) < 0 ? NOMEM : OK;
        break;
    case K_RAW_BOOLEAN:
        if (type == T_BOOLEAN) {
            if (*p == 't') { rc = scan_literal(&p, end, "true", 4); if (rc == OK && buf_byte(b, 't') < 0) return NOMEM; }
            else { rc = scan_literal(&p, end, "false", 5); if (rc == OK && buf_byte(b, 'f') < 0) return NOMEM; }
        } else if (type == T_STRING) {
            rc = scan_string(&p, end, b, MODE_COPY);
        } else {
            return FALLBACK;
        }
        break;
    case K_RAW_JSON:
        if ((rc = skip_value(&p, end, 0)) != OK) return rc;
        rc = put_json_text(b, start, p);
        break;
    case K_RAW_ARRAY:
        if (type == T_ARRAY) rc = put_array(&p, end, b, 0);
        else rc = put_raw_text(type, &p, end, b); /* as rows._raw_text writes it */
        break;
    case K_RAW_TEXT:
        rc = put_raw_text(type, &p, end, b);
        break;
    default:
        return FALLBACK;
    }
    if (rc == OK) *pp = p;
    return rc;
}

/* The record object at *pp: each value's text into self->values. */
static int scan_record(RowPlan *self, cur *pp, cur end) {
    cur p = skip_ws(*pp + 1, end);
    Py_ssize_t next = 0, n = self->nfields;
    int rc;
    for (Py_ssize_t i = 0; i < n; i++) self->offsets[i] = -1;
    if (p < end && *p == '}') {
        *pp = p + 1;
        return OK;
    }
    for (;;) {
        if (p >= end || *p != '"') return FALLBACK;
        cur key = p + 1, q = key;
        while (q < end && *q != '"' && *q != '\\') q++;
        if (q >= end || *q == '\\') return FALLBACK; /* escaped keys: the Python path */
        Py_ssize_t key_len = q - key, index = -1;
        /* the tap writes keys in column order: try the next column first */
        if (next < n && self->fields[next].name_len == key_len &&
            memcmp(self->fields[next].name, key, (size_t)key_len) == 0) {
            index = next;
        } else {
            for (Py_ssize_t i = 0; i < n; i++) {
                if (self->fields[i].name_len == key_len &&
                    memcmp(self->fields[i].name, key, (size_t)key_len) == 0) {
                    index = i;
                    break;
                }
            }
        }
        cur checked = p; /* a key must be valid JSON text (UTF-8, no control characters) */
        if ((rc = scan_string(&checked, end, NULL, MODE_SKIP)) != OK) return rc;
        p = skip_ws(q + 1, end);
        if (p >= end || *p != ':') return FALLBACK;
        p = skip_ws(p + 1, end);
        if (p >= end) return FALLBACK;
        if (index < 0) {
            if ((rc = skip_value(&p, end, 0)) != OK) return rc;
        } else {
            if (self->offsets[index] != -1) return FALLBACK; /* duplicate key */
            Py_ssize_t at = self->values.len;
            if ((rc = put_value(&self->fields[index], &p, end, &self->values)) != OK) return rc;
            self->offsets[index] = at;
            self->lengths[index] = self->values.len - at;
            next = index + 1;
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
        if (p < end && *p == '}') { *pp = p + 1; return OK; }
        return FALLBACK;
    }
}

/* An unescaped JSON string at *pp equal to (want, want_len)? FALLBACK otherwise. */
static int expect_string(cur *pp, cur end, const char *want, Py_ssize_t want_len) {
    cur p = *pp;
    if (p >= end || *p != '"') return FALLBACK;
    if (end - p < want_len + 2 || memcmp(p + 1, want, (size_t)want_len) != 0 ||
        p[want_len + 1] != '"')
        return FALLBACK;
    *pp = p + want_len + 2;
    return OK;
}

enum { SEEN_TYPE = 1, SEEN_STREAM = 2, SEEN_RECORD = 4, SEEN_VERSION = 8, SEEN_TIME = 16 };

/* The row of the record just scanned: fields in column order, TAB-separated, absent
 * optional ones as \N, newline-terminated. None when a required column is absent. */
static PyObject *build_row(RowPlan *self) {
    Py_ssize_t size = self->nfields; /* separators and newline */
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        if (self->offsets[i] == -1) {
            if (self->fields[i].flags & F_REQUIRED) Py_RETURN_NONE;
            size += 2;
        } else {
            size += self->lengths[i];
        }
    }
    PyObject *row = PyBytes_FromStringAndSize(NULL, size);
    if (row == NULL) return NULL;
    char *out = PyBytes_AS_STRING(row);
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        if (i) *out++ = '\t';
        if (self->offsets[i] == -1) {
            *out++ = '\\';
            *out++ = 'N';
        } else {
            memcpy(out, self->values.data + self->offsets[i], (size_t)self->lengths[i]);
            out += self->lengths[i];
        }
    }
    *out = '\n';
    return row;
}

/* convert_record(record) -> row | None: a bare record object (a line of a BATCH file, or
 * the record of a RECORD message the general path decoded). */
static PyObject *RowPlan_convert_record(RowPlan *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "convert_record(record: bytes)");
        return NULL;
    }
    cur p = (cur)PyBytes_AS_STRING(arg);
    cur end = p + PyBytes_GET_SIZE(arg);
    self->values.len = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') Py_RETURN_NONE;
    int rc = scan_record(self, &p, end);
    if (rc == NOMEM) return NULL;
    if (rc != OK || skip_ws(p, end) != end) Py_RETURN_NONE;
    return build_row(self);
}

/* convert(line, stream) -> (row, version) | None */
static PyObject *RowPlan_convert(RowPlan *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "convert(line: bytes, stream: bytes)");
        return NULL;
    }
    cur p = (cur)PyBytes_AS_STRING(args[0]);
    cur end = p + PyBytes_GET_SIZE(args[0]);
    const char *stream = PyBytes_AS_STRING(args[1]);
    Py_ssize_t stream_len = PyBytes_GET_SIZE(args[1]);
    int seen = 0, rc = OK;
    long long version = 0;
    int has_version = 0;
    self->values.len = 0;

    p = skip_ws(p, end);
    if (p >= end || *p != '{') Py_RETURN_NONE;
    p = skip_ws(p + 1, end);
    for (;;) {
        if (p >= end || *p != '"') Py_RETURN_NONE;
        cur key = p + 1, q = key;
        while (q < end && *q != '"' && *q != '\\') q++;
        if (q >= end || *q == '\\') Py_RETURN_NONE;
        Py_ssize_t key_len = q - key;
        int which = 0;
        if (key_len == 4 && memcmp(key, "type", 4) == 0) which = SEEN_TYPE;
        else if (key_len == 6 && memcmp(key, "stream", 6) == 0) which = SEEN_STREAM;
        else if (key_len == 6 && memcmp(key, "record", 6) == 0) which = SEEN_RECORD;
        else if (key_len == 7 && memcmp(key, "version", 7) == 0) which = SEEN_VERSION;
        else if (key_len == 14 && memcmp(key, "time_extracted", 14) == 0) which = SEEN_TIME;
        cur checked = p;
        if (which == 0 && scan_string(&checked, end, NULL, MODE_SKIP) != OK) Py_RETURN_NONE;
        if (which & seen) Py_RETURN_NONE; /* duplicate key */
        seen |= which;
        p = skip_ws(q + 1, end);
        if (p >= end || *p != ':') Py_RETURN_NONE;
        p = skip_ws(p + 1, end);
        if (p >= end) Py_RETURN_NONE;
        switch (which) {
        case SEEN_TYPE: rc = expect_string(&p, end, "RECORD", 6); break;
        case SEEN_STREAM: rc = expect_string(&p, end, stream, stream_len); break;
        case SEEN_RECORD:
            rc = (*p == '{') ? scan_record(self, &p, end) : FALLBACK;
            break;
        case SEEN_VERSION:
            if (*p == 'n') {
                rc = scan_literal(&p, end, "null", 4);
            } else {
                cur start = p;
                int plain;
                rc = scan_number(&p, end, &plain);
                /* up to 18 digits always fits a long long; longer: the Python path */
                if (rc == OK && (!plain || p - start > 18)) rc = FALLBACK;
                if (rc == OK) {
                    version = strtoll((const char *)start, NULL, 10);
                    has_version = 1;
                }
            }
            break;
        case SEEN_TIME:
            rc = (*p == 'n') ? scan_literal(&p, end, "null", 4)
                 : (*p == '"') ? scan_string(&p, end, NULL, MODE_SKIP) : FALLBACK;
            break;
        default:
            rc = skip_value(&p, end, 0);
        }
        if (rc == NOMEM) return NULL;
        if (rc != OK) Py_RETURN_NONE;
        p = skip_ws(p, end);
        if (p < end && *p == ',') { p = skip_ws(p + 1, end); continue; }
        if (p < end && *p == '}') { p = skip_ws(p + 1, end); break; }
        Py_RETURN_NONE;
    }
    if (p != end) Py_RETURN_NONE; /* trailing text */
    if ((seen & (SEEN_TYPE | SEEN_STREAM | SEEN_RECORD)) != (SEEN_TYPE | SEEN_STREAM | SEEN_RECORD))
        Py_RETURN_NONE;

    PyObject *row = build_row(self);
    if (row == NULL || row == Py_None) return row;
    PyObject *version_obj = has_version ? PyLong_FromLongLong(version) : Py_NewRef(Py_None);
    if (version_obj == NULL) {
        Py_DECREF(row);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, row, version_obj);
    Py_DECREF(row);
    Py_DECREF(version_obj);
    return result;
}

static void RowPlan_dealloc(RowPlan *self) {
    for (Py_ssize_t i = 0; i < self->nfields; i++) PyMem_Free(self->fields[i].name);
    PyMem_Free(self->fields);
    PyMem_Free(self->offsets);
    PyMem_Free(self->lengths);
    PyMem_Free(self->values.data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* RowPlan(fields: list[tuple[bytes, int, int, int]]) */
static int RowPlan_init(RowPlan *self, PyObject *args, PyObject *kwargs) {
    PyObject *spec;
    (void)kwargs;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &spec)) return -1;
    if (self->fields != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "RowPlan is already initialised");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(spec);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "a plan needs at least one field");
        return -1;
    }
    self->fields = PyMem_Calloc((size_t)n, sizeof(Field));
    self->offsets = PyMem_Calloc((size_t)n, sizeof(Py_ssize_t));
    self->lengths = PyMem_Calloc((size_t)n, sizeof(Py_ssize_t));
    if (self->fields == NULL || self->offsets == NULL || self->lengths == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name;
        Py_ssize_t name_len;
        Field *f = &self->fields[i];
        if (!PyArg_ParseTuple(PyList_GET_ITEM(spec, i), "y#iii", &name, &name_len, &f->kind,
                              &f->flags, &f->allowed))
            return -1;
        if (f->kind < K_STR || f->kind > K_RAW_BOOLEAN) {
            PyErr_Format(PyExc_ValueError, "unknown field kind %d", f->kind);
            return -1;
        }
        f->name = PyMem_Malloc((size_t)name_len + 1);
        if (f->name == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(f->name, name, (size_t)name_len);
        f->name[name_len] = '\0';
        f->name_len = name_len;
        self->nfields = i + 1;
    }
    return 0;
}

static PyMethodDef RowPlan_methods[] = {
    {"convert", (PyCFunction)(void (*)(void))RowPlan_convert, METH_FASTCALL,
     "convert(line, stream) -> (COPY row bytes, version or None), or None: the Python path "
     "decides."},
    {"convert_record", (PyCFunction)RowPlan_convert_record, METH_O,
     "convert_record(record) -> COPY row bytes, or None: the Python path decides."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RowPlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "target_warehouse_raw._rowcopy.RowPlan",
    .tp_basicsize = sizeof(RowPlan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One stream's RECORD line -> COPY row conversion (see rows.RowEncoder).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RowPlan_init,
    .tp_dealloc = (destructor)RowPlan_dealloc,
    .tp_methods = RowPlan_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowcopy",
    "Singer RECORD lines to PostgreSQL COPY text rows (the target's hot path, in C).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rowcopy(void) {
    if (PyType_Ready(&RowPlanType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&RowPlanType);
    if (PyModule_AddObject(m, "RowPlan", (PyObject *)&RowPlanType) < 0) {
        Py_DECREF(&RowPlanType);
        Py_DECREF(m);
        return NULL;
    }
    const struct { const char *name; int value; } constants[] = {
        {"K_STR", K_STR}, {"K_BOOL", K_BOOL}, {"K_INT", K_INT},
        {"K_RAW_TEXT", K_RAW_TEXT}, {"K_RAW_JSON", K_RAW_JSON},
        {"K_RAW_ARRAY", K_RAW_ARRAY}, {"K_RAW_BOOLEAN", K_RAW_BOOLEAN},
        {"F_NULL_OK", F_NULL_OK}, {"F_REQUIRED", F_REQUIRED},
        {"T_STRING", T_STRING}, {"T_NUMBER", T_NUMBER}, {"T_OBJECT", T_OBJECT},
        {"T_ARRAY", T_ARRAY}, {"T_BOOLEAN", T_BOOLEAN}, {"T_NULL", T_NULL},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
