/*
 * consumer.records._speedups: the happy path of the python view of an item image, in C.
 *
 * DynamoDB typed JSON ({"name": {"S": "x"}, ...}, as orjson parses it) to native Python values,
 * the same values consumer.records.attribute's pure-Python converter gives. Only regular input
 * is converted here: anything irregular (a wrong shape, an unknown tag, a number the decimal
 * context rejects, bad base64) makes these functions return None, and the caller runs the
 * pure-Python converter, which either gives the same result or raises the error that names the
 * problem. So error reporting lives in one place, and this file never decides what is valid
 * on its own beyond "the obvious regular case".
 *
 * Numbers are made by the caller's decimal context (create_number, given to configure()), so
 * their values and validation are exactly the pure-Python path's; binary values go through the
 * caller's strict base64 decoder.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

/* Set by configure(), from attribute.py: DYNAMODB_NUMBERS.create_decimal, the strict binary
 * decoder (base64 text -> bytes), JsonNumber, and the binary checker of the json view. */
static PyObject *create_number = NULL;
static PyObject *decode_binary = NULL;
static PyObject *json_number = NULL;
static PyObject *binary_text = NULL;
static PyObject *decimal_new = NULL; /* Decimal.__new__, to make a JsonNumber without Python */
static PyObject *literal_name = NULL; /* "literal", JsonNumber's slot */

/* Raised internally for irregular input; never escapes the module. */
static PyObject *Irregular = NULL;

/* DynamoDB nests attribute values at most 32 levels deep, a top-level attribute being level 1
 * (attribute.py's MAX_LEVEL): a value deeper than that is irregular, and Python names it. */
#define MAX_LEVEL 32

static PyObject *convert_item(PyObject *item, int view, int level);
static PyObject *convert_value(PyObject *value, int view, int level);

static PyObject *
irregular(void)
{
    PyErr_SetNone(Irregular);
    return NULL;
}

/* The tag as a short ASCII string, or NULL if it is not one. */
static const char *
tag_text(PyObject *tag, Py_ssize_t *length)
{
    if (!PyUnicode_CheckExact(tag) || !PyUnicode_IS_COMPACT_ASCII(tag)) {
        return NULL;
    }
    *length = PyUnicode_GET_LENGTH(tag);
    return (const char *)PyUnicode_DATA(tag);
}

/* The three views of an image (see image.py): what each converter makes of a value. In the
 * client view nothing is converted (binary text would be: that is left to Python), so a
 * regular value gives back the value itself, checked. */
enum { VIEW_PYTHON, VIEW_JSON, VIEW_CLIENT };

/* The characters a regular N payload is made of: no letters, so never NaN or Infinity. */
static inline int
is_number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Whether text is a number in JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
is_json_number(const char *text, Py_ssize_t length)
{
    Py_ssize_t i = 0, start;
    if (i < length && text[i] == '-') {
        i++;
    }
    if (i < length && text[i] == '0') {
        i++;
    }
    else {
        for (start = i; i < length && text[i] >= '0' && text[i] <= '9'; i++) {
        }
        if (i == start) {
            return 0;
        }
    }
    if (i < length && text[i] == '.') {
        for (start = ++i; i < length && text[i] >= '0' && text[i] <= '9'; i++) {
        }
        if (i == start) {
            return 0;
        }
    }
    if (i < length && (text[i] == 'e' || text[i] == 'E')) {
        i++;
        if (i < length && (text[i] == '+' || text[i] == '-')) {
            i++;
        }
        for (start = i; i < length && text[i] >= '0' && text[i] <= '9'; i++) {
        }
        if (i == start) {
            return 0;
        }
    }
    return i == length;
}

/* A number payload: only digits, signs, '.', 'e' and 'E' (so never NaN or Infinity), then the
 * caller's decimal context (python and client views) or JsonNumber (json view), which check
 * digits and exponent range. */
static PyObject *
convert_number(PyObject *payload, int view)
{
    if (!PyUnicode_CheckExact(payload) || !PyUnicode_IS_COMPACT_ASCII(payload)) {
        return irregular();
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(payload);
    const char *text = (const char *)PyUnicode_DATA(payload);
    if (length == 0) {
        return irregular();
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        char c = text[i];
        if (!is_number_char(c)) {
            return irregular();
        }
    }
    PyObject *number = PyObject_CallOneArg(create_number, payload);
    if (view != VIEW_JSON || number == NULL) {
        return number;
    }
    if (!is_json_number(text, length)) {
        Py_DECREF(number); /* JsonNumber writes a normalized literal: its own job */
        return PyObject_CallOneArg(json_number, payload);
    }
    /* What JsonNumber(text) does, without running Python: Decimal.__new__(JsonNumber, the
     * checked value), with the text DynamoDB sent as its literal. */
    PyObject *json = PyObject_CallFunctionObjArgs(decimal_new, json_number, number, NULL);
    Py_DECREF(number);
    if (json != NULL && PyObject_SetAttr(json, literal_name, payload) < 0) {
        Py_CLEAR(json);
    }
    return json;
}

/* A binary payload: bytes (python), canonical base64 text (json), or, in the client view,
 * only bytes pass: base64 text must become bytes, which the Python path does. */
static PyObject *
convert_binary(PyObject *payload, int view)
{
    if (view == VIEW_CLIENT) {
        return PyBytes_CheckExact(payload) ? Py_NewRef(payload) : irregular();
    }
    return PyObject_CallOneArg(view == VIEW_JSON ? binary_text : decode_binary, payload);
}

/* In the client view a checked container is itself: drop the converted copy. */
static PyObject *
client_result(PyObject *converted, PyObject *original)
{
    if (converted == NULL) {
        return NULL;
    }
    Py_DECREF(converted);
    return Py_NewRef(original);
}

/* L: a list of converted members, at `level`. */
static PyObject *
convert_list(PyObject *payload, int view, int level)
{
    if (!PyList_CheckExact(payload)) {
        return irregular();
    }
    Py_ssize_t size = PyList_GET_SIZE(payload);
    PyObject *out = PyList_New(size);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *member = convert_value(PyList_GET_ITEM(payload, i), view, level);
        if (member == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, member);
    }
    return out;
}

/* SS, NS or BS (`kind` 'S', 'N' or 'B'): a set of converted members (python view), a list of
 * them in the order received (json view). DynamoDB's set rules: an empty set, or one that
 * repeats a member (numbers by value, binary by bytes or canonical base64), is irregular. */
static PyObject *
convert_set(PyObject *payload, char kind, int view)
{
    if (!PyList_CheckExact(payload) || PyList_GET_SIZE(payload) == 0) {
        return irregular();
    }
    PyObject *out = view == VIEW_PYTHON ? PySet_New(NULL) : PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    /* The json and client views keep lists: a set of the members beside them finds repeats. */
    PyObject *distinct = view == VIEW_PYTHON ? Py_NewRef(out) : PySet_New(NULL);
    if (distinct == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    Py_ssize_t size = PyList_GET_SIZE(payload);
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *member = PyList_GET_ITEM(payload, i);
        PyObject *converted;
        if (kind == 'S') {
            converted = PyUnicode_CheckExact(member) ? Py_NewRef(member) : irregular();
        }
        else if (kind == 'N') {
            converted = convert_number(member, view);
        }
        else {
            converted = convert_binary(member, view);
        }
        int added = converted == NULL       ? -1
                    : view == VIEW_PYTHON ? PySet_Add(out, converted)
                                          : PyList_Append(out, converted);
        if (added == 0 && view != VIEW_PYTHON) {
            added = PySet_Add(distinct, converted);
        }
        Py_XDECREF(converted);
        if (added < 0) {
            Py_DECREF(distinct);
            Py_DECREF(out);
            return NULL;
        }
    }
    Py_ssize_t unique = PySet_GET_SIZE(distinct);
    Py_DECREF(distinct);
    if (unique != size) {
        Py_DECREF(out);
        return irregular(); /* a repeated member */
    }
    return out;
}

/* One attribute value, {"TAG": payload}, at `level`, in `view`. */
static PyObject *
convert_value(PyObject *value, int view, int level)
{
    if (!PyDict_CheckExact(value) || PyDict_GET_SIZE(value) != 1 || level > MAX_LEVEL) {
        return irregular();
    }
    Py_ssize_t position = 0;
    PyObject *tag, *payload;
    PyDict_Next(value, &position, &tag, &payload);
    Py_ssize_t length;
    const char *name = tag_text(tag, &length);
    if (name == NULL) {
        return irregular();
    }
    PyObject *out;
    if (length == 1 && name[0] == 'S') {
        out = PyUnicode_CheckExact(payload) ? Py_NewRef(payload) : irregular();
    }
    else if (length == 1 && name[0] == 'N') {
        out = convert_number(payload, view);
    }
    else if (length == 1 && name[0] == 'M') {
        out = convert_item(payload, view, level + 1);
    }
    else if (length == 1 && name[0] == 'L') {
        if (Py_EnterRecursiveCall(" converting an L value")) {
            return NULL;
        }
        out = convert_list(payload, view, level + 1);
        Py_LeaveRecursiveCall();
    }
    else if (length == 1 && name[0] == 'B') {
        out = convert_binary(payload, view);
    }
    else if (length == 2 && name[1] == 'S' &&
             (name[0] == 'S' || name[0] == 'N' || name[0] == 'B')) {
        out = convert_set(payload, name[0], view);
    }
    else if (length == 4 && memcmp(name, "BOOL", 4) == 0) {
        out = PyBool_Check(payload) ? Py_NewRef(payload) : irregular();
    }
    else if (length == 4 && memcmp(name, "NULL", 4) == 0) {
        out = payload == Py_True ? Py_NewRef(Py_None) : irregular();
    }
    else {
        return irregular();
    }
    return view == VIEW_CLIENT ? client_result(out, value) : out;
}

/* An item or an M payload whose values are at `level`: name -> converted value, in the item's
 * order (the client view: the item itself, checked). */
static PyObject *
convert_item(PyObject *item, int view, int level)
{
    if (!PyDict_CheckExact(item)) {
        return irregular();
    }
    if (Py_EnterRecursiveCall(" converting an M value")) {
        return NULL;
    }
    PyObject *out = view == VIEW_CLIENT ? NULL : PyDict_New();
    if (out == NULL && view != VIEW_CLIENT) {
        Py_LeaveRecursiveCall();
        return NULL;
    }
    Py_ssize_t position = 0;
    PyObject *name, *value;
    while (PyDict_Next(item, &position, &name, &value)) {
        PyObject *converted = convert_value(value, view, level);
        int failed = converted == NULL || (out != NULL && PyDict_SetItem(out, name, converted) < 0);
        Py_XDECREF(converted);
        if (failed) {
            Py_XDECREF(out);
            Py_LeaveRecursiveCall();
            return NULL;
        }
    }
    Py_LeaveRecursiveCall();
    return out == NULL ? Py_NewRef(item) : out;
}

/* The result of a conversion for Python: irregular input and the errors of the caller's
 * converters (Exception subclasses) become None, so the pure-Python path can say why. */
static PyObject *
finish(PyObject *result)
{
    if (result == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return result;
}

static int
configured(void)
{
    if (create_number == NULL || decode_binary == NULL || json_number == NULL ||
        binary_text == NULL || decimal_new == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.configure() was not called");
        return 0;
    }
    return 1;
}

static PyObject *
item_to_python(PyObject *module, PyObject *item)
{
    return configured() ? finish(convert_item(item, VIEW_PYTHON, 1)) : NULL;
}

static PyObject *
item_to_json(PyObject *module, PyObject *item)
{
    return configured() ? finish(convert_item(item, VIEW_JSON, 1)) : NULL;
}

static PyObject *
item_to_client(PyObject *module, PyObject *item)
{
    return configured() ? finish(convert_item(item, VIEW_CLIENT, 1)) : NULL;
}

static PyObject *
item_to_python_sharing(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "item_to_python_sharing(item, known_wire, known) takes 3 arguments");
        return NULL;
    }
    if (!configured()) {
        return NULL;
    }
    PyObject *item = args[0], *known_wire = args[1], *known = args[2];
    if (!PyDict_CheckExact(item) || !PyDict_CheckExact(known_wire) ||
        !PyDict_CheckExact(known)) {
        Py_RETURN_NONE;
    }
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t position = 0;
    PyObject *name, *value;
    while (PyDict_Next(item, &position, &name, &value)) {
        /* Reuse the known conversion where the typed JSON is equal (the same test as the
         * pure-Python path: known_wire[name] == value and name in known). */
        PyObject *converted = NULL;
        PyObject *wire = PyDict_GetItemWithError(known_wire, name);
        if (wire != NULL) {
            int equal = wire == value ? 1 : PyObject_RichCompareBool(wire, value, Py_EQ);
            if (equal < 0) {
                Py_DECREF(out);
                return finish(NULL);
            }
            if (equal) {
                converted = Py_XNewRef(PyDict_GetItemWithError(known, name));
            }
        }
        if (converted == NULL && PyErr_Occurred()) {
            Py_DECREF(out);
            return finish(NULL);
        }
        if (converted == NULL) {
            converted = convert_value(value, VIEW_PYTHON, 1);
        }
        if (converted == NULL || PyDict_SetItem(out, name, converted) < 0) {
            Py_XDECREF(converted);
            Py_DECREF(out);
            return finish(NULL);
        }
        Py_DECREF(converted);
    }
    return out;
}

/* --- a one-pass parser of a whole Kinesis destination record -------------------------------
 *
 * parse_change(data) parses a record's JSON and builds the python views of dynamodb.Keys,
 * dynamodb.NewImage and dynamodb.OldImage directly, without the typed-JSON wrapper dicts a
 * generic parser makes (those dicts cost more than everything else). The rest of the record
 * becomes plain values (dict, list, str, int, True/False/None). Anything this parser does not
 * handle, or that is not valid, makes it return None: floats or integers over 18 digits outside
 * the images, lone surrogate escapes, duplicate keys, nesting over MAX_DEPTH, and every kind of
 * invalid JSON or irregular typed value. The caller then parses the record the general way,
 * which gives the same result or the precise error.
 */

#define MAX_DEPTH 200
#define SEEN_NUMBERS 48

typedef struct {
    const char *text; /* in the record's bytes */
    Py_ssize_t length;
    PyObject *number;
} SeenNumber;

typedef struct {
    const char *p;
    const char *end;
    int depth;
    int level; /* inside an image: the level of the attribute values being read */
    int in_keys; /* reading dynamodb.Keys: its values must be S, N or B */
    int envelope; /* parse_envelope: Keys as typed JSON, the item images checked, not built */
    /* The numbers made so far in this record, by text: a MODIFY's two images repeat most of
     * their numbers, and a Decimal costs more than a short scan of this list. */
    int seen_count;
    SeenNumber seen[SEEN_NUMBERS];
} Parser;

/* Attribute names and envelope keys repeat in every record: short ASCII ones are kept in a
 * small direct-mapped cache, so they are neither allocated nor hashed again. Bounded memory:
 * KEY_CACHE_SIZE strings of at most KEY_CACHE_LENGTH characters. */
#define KEY_CACHE_SIZE 2048
#define KEY_CACHE_LENGTH 64
static PyObject *key_cache[KEY_CACHE_SIZE];

static PyObject *
cached_key(const char *start, Py_ssize_t length)
{
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < length; i++) {
        hash = (hash ^ (unsigned char)start[i]) * 16777619u;
    }
    PyObject **slot = &key_cache[hash & (KEY_CACHE_SIZE - 1)];
    PyObject *key = *slot;
    if (key != NULL && PyUnicode_GET_LENGTH(key) == length &&
        memcmp(PyUnicode_1BYTE_DATA(key), start, (size_t)length) == 0) {
        return Py_NewRef(key);
    }
    key = PyUnicode_New(length, 127);
    if (key == NULL) {
        return NULL;
    }
    memcpy(PyUnicode_1BYTE_DATA(key), start, (size_t)length);
    if (PyObject_Hash(key) == -1) { /* computed once, kept in the str */
        Py_DECREF(key);
        return NULL;
    }
    Py_XSETREF(*slot, Py_NewRef(key));
    return key;
}

/* Where an object is: what its members' values are (see parse_member). */
enum { LEVEL_RECORD, LEVEL_BODY, LEVEL_OTHER, LEVEL_ITEM };

static PyObject *parse_generic(Parser *parser, int level);
static PyObject *parse_object(Parser *parser, int level);
static PyObject *parse_attribute(Parser *parser);
static int skip_value(Parser *parser);

static inline void
skip_space(Parser *parser)
{
    const char *p = parser->p, *end = parser->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    parser->p = p;
}

static inline int
expect(Parser *parser, char c)
{
    skip_space(parser);
    if (parser->p < parser->end && *parser->p == c) {
        parser->p++;
        return 1;
    }
    return 0;
}

/* The next non-space character, not consumed; 0 at the end. */
static inline char
peek(Parser *parser)
{
    skip_space(parser);
    return parser->p < parser->end ? *parser->p : 0;
}

static int
hex_value(const char *p, unsigned int *value)
{
    unsigned int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned int)(c - '0');
        }
        else if (c >= 'a' && c <= 'f') {
            v |= (unsigned int)(c - 'a' + 10);
        }
        else if (c >= 'A' && c <= 'F') {
            v |= (unsigned int)(c - 'A' + 10);
        }
        else {
            return 0;
        }
    }
    *value = v;
    return 1;
}

/* A string with escapes: decode them into UTF-8, then let CPython validate and build it. */
static PyObject *
unescape_string(const char *start, const char *stop)
{
    char *buffer = PyMem_Malloc((size_t)(stop - start) + 1);
    if (buffer == NULL) {
        return PyErr_NoMemory();
    }
    char *out = buffer;
    const char *p = start;
    while (p < stop) {
        char c = *p++;
        if (c != '\\') {
            *out++ = c;
            continue;
        }
        c = *p++; /* the scan guaranteed a character after every backslash */
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '/': *out++ = '/'; break;
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'u': {
            unsigned int code;
            if (stop - p < 4 || !hex_value(p, &code)) {
                goto bad;
            }
            p += 4;
            if (code >= 0xD800 && code <= 0xDBFF) {
                unsigned int low;
                if (stop - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex_value(p + 2, &low) ||
                    low < 0xDC00 || low > 0xDFFF) {
                    goto bad; /* a lone surrogate: left to the general parser */
                }
                p += 6;
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
            else if (code >= 0xDC00 && code <= 0xDFFF) {
                goto bad;
            }
            if (code < 0x80) {
                *out++ = (char)code;
            }
            else if (code < 0x800) {
                *out++ = (char)(0xC0 | (code >> 6));
                *out++ = (char)(0x80 | (code & 0x3F));
            }
            else if (code < 0x10000) {
                *out++ = (char)(0xE0 | (code >> 12));
                *out++ = (char)(0x80 | ((code >> 6) & 0x3F));
                *out++ = (char)(0x80 | (code & 0x3F));
            }
            else {
                *out++ = (char)(0xF0 | (code >> 18));
                *out++ = (char)(0x80 | ((code >> 12) & 0x3F));
                *out++ = (char)(0x80 | ((code >> 6) & 0x3F));
                *out++ = (char)(0x80 | (code & 0x3F));
            }
            break;
        }
        default:
            goto bad;
        }
    }
    PyObject *text = PyUnicode_DecodeUTF8(buffer, out - buffer, "strict");
    PyMem_Free(buffer);
    return text;
bad:
    PyMem_Free(buffer);
    return irregular();
}

/* Scans the JSON string at parser->p (after optional space) up to its closing quote: its text
 * is [*start, *stop); `escaped` and `wide` say whether it holds escapes or non-ASCII bytes. */
static int
scan_string(Parser *parser, const char **start, const char **stop, int *escaped, int *wide)
{
    if (!expect(parser, '"')) {
        return 0;
    }
    const char *p = parser->p, *end = parser->end;
    *start = p;
    *escaped = *wide = 0;
    while (1) {
        if (p >= end) {
            return 0;
        }
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            break;
        }
        if (c == '\\') {
            *escaped = 1;
            p += 2;
            continue;
        }
        if (c < 0x20) {
            return 0; /* control characters must be escaped */
        }
        *wide |= c >= 0x80;
        p++;
    }
    *stop = p;
    parser->p = p + 1;
    return 1;
}

/* A JSON string at parser->p (after optional space) as a str. */
static PyObject *
parse_string(Parser *parser)
{
    const char *start, *stop;
    int escaped, wide;
    if (!scan_string(parser, &start, &stop, &escaped, &wide)) {
        return irregular();
    }
    if (escaped) {
        return unescape_string(start, stop);
    }
    if (wide) {
        return PyUnicode_DecodeUTF8(start, stop - start, "strict");
    }
    PyObject *text = PyUnicode_New(stop - start, 127);
    if (text != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(text), start, (size_t)(stop - start));
    }
    return text;
}

/* An object key: from the key cache when it is short plain ASCII, else parse_string. */
static PyObject *
parse_key(Parser *parser)
{
    skip_space(parser);
    const char *p = parser->p, *end = parser->end;
    if (p < end && *p == '"') {
        const char *start = ++p;
        while (p < end && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' &&
               *p != '\\') {
            p++;
        }
        if (p < end && *p == '"' && p - start <= KEY_CACHE_LENGTH) {
            parser->p = p + 1;
            return cached_key(start, p - start);
        }
    }
    return parse_string(parser);
}

/* The raw bytes of a key that has no escapes (the type tags), without making a str. */
static int
raw_key(Parser *parser, const char **start, Py_ssize_t *length)
{
    if (!expect(parser, '"')) {
        return 0;
    }
    const char *p = parser->p, *end = parser->end;
    while (p < end && *p != '"' && *p != '\\') {
        p++;
    }
    if (p >= end || *p != '"') {
        return 0;
    }
    *start = parser->p;
    *length = p - parser->p;
    parser->p = p + 1;
    return expect(parser, ':');
}

static int
literal(Parser *parser, const char *word, Py_ssize_t length)
{
    skip_space(parser);
    if (parser->end - parser->p >= length && memcmp(parser->p, word, (size_t)length) == 0) {
        parser->p += length;
        return 1;
    }
    return 0;
}

/* An N payload: a string of digits, signs, '.', 'e', 'E', made into a Decimal by the caller's
 * context, once per distinct text in the record. */
static PyObject *
parse_number_payload(Parser *parser)
{
    if (!expect(parser, '"')) {
        return irregular();
    }
    const char *start = parser->p, *p = start, *end = parser->end;
    while (p < end && is_number_char(*p)) {
        p++;
    }
    if (p >= end || *p != '"' || p == start) {
        return irregular(); /* escapes, spaces, letters...: left to the general path */
    }
    parser->p = p + 1;
    Py_ssize_t length = p - start;
    for (int i = 0; i < parser->seen_count; i++) {
        SeenNumber *seen = &parser->seen[i];
        if (seen->length == length && memcmp(seen->text, start, (size_t)length) == 0) {
            return Py_NewRef(seen->number);
        }
    }
    PyObject *text = PyUnicode_New(length, 127);
    if (text == NULL) {
        return NULL;
    }
    memcpy(PyUnicode_1BYTE_DATA(text), start, (size_t)length);
    PyObject *number = PyObject_CallOneArg(create_number, text);
    Py_DECREF(text);
    if (number != NULL && parser->seen_count < SEEN_NUMBERS) {
        SeenNumber *seen = &parser->seen[parser->seen_count++];
        seen->text = start;
        seen->length = length;
        seen->number = Py_NewRef(number);
    }
    return number;
}

/* The closing bracket of a container whose members are all read: `out`, or irregular (and
 * `out` released) if the bracket is not there. */
static PyObject *
close_container(Parser *parser, PyObject *out, char bracket)
{
    if (!expect(parser, bracket)) {
        Py_DECREF(out);
        return irregular();
    }
    parser->depth--;
    return out;
}

static int
enter(Parser *parser)
{
    if (++parser->depth > MAX_DEPTH) {
        irregular();
        return 0;
    }
    return 1;
}

/* `[` member (`,` member)* `]` or `[]`, with `member` one of: 'A' attribute value, 'S' string,
 * 'N' number payload, 'B' binary, 'G' any JSON value outside the images; into a list (A, G)
 * or a set (the others). */
static PyObject *
parse_members(Parser *parser, char kind)
{
    if (!expect(parser, '[') || !enter(parser)) {
        return irregular();
    }
    int list = kind == 'A' || kind == 'G';
    PyObject *out = list ? PyList_New(0) : PySet_New(NULL);
    if (out == NULL) {
        return NULL;
    }
    if (peek(parser) == ']') {
        parser->p++;
        parser->depth--;
        if (!list) {
            Py_DECREF(out);
            return irregular(); /* an empty set: DynamoDB has none */
        }
        return out;
    }
    Py_ssize_t count = 0;
    do {
        PyObject *member;
        if (kind == 'A') {
            member = parse_attribute(parser);
        }
        else if (kind == 'G') {
            member = parse_generic(parser, LEVEL_OTHER);
        }
        else if (kind == 'S') {
            member = parse_string(parser);
        }
        else if (kind == 'N') {
            member = parse_number_payload(parser);
        }
        else {
            PyObject *text = parse_string(parser);
            member = text == NULL ? NULL : PyObject_CallOneArg(decode_binary, text);
            Py_XDECREF(text);
        }
        int added = member == NULL ? -1
                    : list         ? PyList_Append(out, member)
                                   : PySet_Add(out, member);
        Py_XDECREF(member);
        if (added < 0) {
            Py_DECREF(out);
            return NULL;
        }
        count++;
    } while (expect(parser, ','));
    if (!list && PySet_GET_SIZE(out) != count) {
        Py_DECREF(out);
        return irregular(); /* a repeated set member */
    }
    return close_container(parser, out, ']');
}

/* One attribute value, {"TAG": payload}, as its python value. */
static PyObject *
parse_attribute(Parser *parser)
{
    const char *tag;
    Py_ssize_t length;
    if (parser->level > MAX_LEVEL || !expect(parser, '{') || !raw_key(parser, &tag, &length)) {
        return irregular();
    }
    PyObject *value = NULL;
    if (parser->in_keys && parser->level == 1 &&
        (length != 1 || (tag[0] != 'S' && tag[0] != 'N' && tag[0] != 'B'))) {
        return irregular(); /* a key attribute of another type: Python names the rule */
    }
    if (length == 1) {
        switch (tag[0]) {
        case 'S':
            value = parse_string(parser);
            break;
        case 'N':
            value = parse_number_payload(parser);
            break;
        case 'M':
            parser->level++;
            value = parse_object(parser, LEVEL_ITEM);
            parser->level--;
            break;
        case 'L':
            parser->level++;
            value = parse_members(parser, 'A');
            parser->level--;
            break;
        case 'B': {
            PyObject *text = parse_string(parser);
            value = text == NULL ? NULL : PyObject_CallOneArg(decode_binary, text);
            Py_XDECREF(text);
            break;
        }
        default:
            return irregular();
        }
    }
    else if (length == 2 && tag[1] == 'S' && (tag[0] == 'S' || tag[0] == 'N' || tag[0] == 'B')) {
        value = parse_members(parser, tag[0]);
    }
    else if (length == 4 && memcmp(tag, "BOOL", 4) == 0) {
        if (literal(parser, "true", 4)) {
            value = Py_NewRef(Py_True);
        }
        else if (literal(parser, "false", 5)) {
            value = Py_NewRef(Py_False);
        }
        else {
            return irregular();
        }
    }
    else if (length == 4 && memcmp(tag, "NULL", 4) == 0) {
        if (!literal(parser, "true", 4)) {
            return irregular();
        }
        value = Py_NewRef(Py_None);
    }
    else {
        return irregular();
    }
    if (value != NULL && !expect(parser, '}')) {
        Py_DECREF(value); /* more than one tag: left to the general parser */
        return irregular();
    }
    return value;
}

static int
is_image_key(PyObject *name)
{
    return PyUnicode_CompareWithASCIIString(name, "Keys") == 0 ||
           PyUnicode_CompareWithASCIIString(name, "NewImage") == 0 ||
           PyUnicode_CompareWithASCIIString(name, "OldImage") == 0;
}

/* The value of the member `name` of an object at `level`. In an item (an image or an M payload)
 * every value is an attribute value; the record's dynamodb object holds the images. */
static PyObject *
parse_member(Parser *parser, int level, PyObject *name)
{
    if (level == LEVEL_ITEM) {
        return parse_attribute(parser);
    }
    if (level == LEVEL_BODY && parser->envelope && is_image_key(name)) {
        /* Keys as typed JSON; an item image object is checked (as JSON) and stands as `...`. */
        if (PyUnicode_CompareWithASCIIString(name, "Keys") == 0 || peek(parser) != '{') {
            return parse_generic(parser, LEVEL_OTHER);
        }
        return skip_value(parser) ? Py_NewRef(Py_Ellipsis) : irregular();
    }
    if (level == LEVEL_BODY && is_image_key(name)) {
        /* Anything but an object (null: no image) is read as it is, and the caller judges.
         * Keys hold a primary key: one or two attributes of type S, N or B. */
        parser->level = 1;
        parser->in_keys = PyUnicode_CompareWithASCIIString(name, "Keys") == 0;
        PyObject *image = peek(parser) == '{' ? parse_object(parser, LEVEL_ITEM)
                                              : parse_generic(parser, LEVEL_OTHER);
        if (image != NULL && parser->in_keys && PyDict_CheckExact(image) &&
            PyDict_GET_SIZE(image) > 2) {
            Py_CLEAR(image);
            irregular();
        }
        parser->in_keys = 0;
        return image;
    }
    if (level == LEVEL_RECORD && PyUnicode_CompareWithASCIIString(name, "dynamodb") == 0) {
        return parse_generic(parser, LEVEL_BODY);
    }
    return parse_generic(parser, LEVEL_OTHER);
}

/* An object as a dict; duplicate keys are irregular (left to the general parser). */
static PyObject *
parse_object(Parser *parser, int level)
{
    if (!expect(parser, '{') || !enter(parser)) {
        return irregular();
    }
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    if (peek(parser) == '}') {
        parser->p++;
        parser->depth--;
        return out;
    }
    Py_ssize_t count = 0;
    do {
        PyObject *name = parse_key(parser);
        PyObject *value = NULL;
        if (name != NULL) {
            value = expect(parser, ':') ? parse_member(parser, level, name) : irregular();
        }
        if (value == NULL || PyDict_SetItem(out, name, value) < 0 ||
            PyDict_GET_SIZE(out) != ++count) {
            if (value != NULL && !PyErr_Occurred()) {
                irregular(); /* a duplicate key */
            }
            Py_XDECREF(name);
            Py_XDECREF(value);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(name);
        Py_DECREF(value);
    } while (expect(parser, ','));
    return close_container(parser, out, '}');
}

/* A JSON integer (at most 18 digits); anything else that starts like a number is irregular. */
static PyObject *
parse_integer(Parser *parser)
{
    const char *p = parser->p, *end = parser->end;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    const char *digits = p;
    long long value = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - digits == 18) {
            return irregular(); /* a 19th digit could overflow: left to the general parser */
        }
        value = value * 10 + (*p - '0');
        p++;
    }
    Py_ssize_t count = p - digits;
    if (count == 0 || (count > 1 && digits[0] == '0') ||
        (p < end && (*p == '.' || *p == 'e' || *p == 'E'))) {
        return irregular();
    }
    parser->p = p;
    return PyLong_FromLongLong(negative ? -value : value);
}

/* Any JSON value outside the images, at `level` (see parse_member). */
static PyObject *
parse_generic(Parser *parser, int level)
{
    char c = peek(parser);
    if (c == '"') {
        return parse_string(parser);
    }
    if (c == '{') {
        return parse_object(parser, level);
    }
    if (c == '[') {
        return parse_members(parser, 'G');
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        return parse_integer(parser);
    }
    if (literal(parser, "true", 4)) {
        Py_RETURN_TRUE;
    }
    if (literal(parser, "false", 5)) {
        Py_RETURN_FALSE;
    }
    if (literal(parser, "null", 4)) {
        Py_RETURN_NONE;
    }
    return irregular();
}

/* Bytes that end a fast scan: a string's quote or escape, control characters, non-ASCII. */
static int
plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static unsigned char plain_bytes[256];

/* The string at p (its opening quote), checked exactly as parse_string reads it; the byte after
 * its closing quote, or NULL. `end` must be followed by a byte that is not plain (a bytes
 * object's trailing NUL). */
static const unsigned char *
skip_string(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *start = ++p;
    while (plain_bytes[*p]) {
        p++;
    }
    if (p < end && *p == '"') {
        return p + 1;
    }
    Parser parser = {.p = (const char *)start - 1, .end = (const char *)end};
    PyObject *text = parse_string(&parser); /* escapes or non-ASCII: rare, checked exactly */
    if (text == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_DECREF(text);
    return (const unsigned char *)parser.p;
}

/* Whether the JSON value at parser->p is valid as parse_generic reads it (duplicate keys aside),
 * without building anything: the item images of parse_envelope. One loop with an explicit
 * stack of the open containers' closing brackets: this runs over every byte of every image. */
static int
skip_value(Parser *parser)
{
    const unsigned char *p = (const unsigned char *)parser->p;
    const unsigned char *end = (const unsigned char *)parser->end;
    char open[MAX_DEPTH];
    int depth = 0, room = MAX_DEPTH - parser->depth;
#define SPACE() while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++
value:
    SPACE();
    switch (*p) {
    case '"':
        if ((p = skip_string(p, end)) == NULL) {
            return 0;
        }
        break;
    case '{':
    case '[':
        if (depth == room) {
            return 0;
        }
        open[depth++] = *p == '{' ? '}' : ']';
        p++;
        SPACE();
        if (*p == open[depth - 1]) {
            p++;
            depth--;
            goto after;
        }
        if (open[depth - 1] == ']') {
            goto value;
        }
        goto member;
    case 't':
    case 'f':
    case 'n': {
        const char *word = *p == 't' ? "true" : *p == 'f' ? "false" : "null";
        size_t length = strlen(word);
        if ((size_t)(end - p) < length || memcmp(p, word, length) != 0) {
            return 0;
        }
        p += length;
        goto after;
    }
    default: { /* an integer of at most 18 digits, as parse_integer reads it */
        const unsigned char *digits = p + (*p == '-');
        for (p = digits; p < end && *p >= '0' && *p <= '9'; p++) {
        }
        if (p == digits || p - digits > 18 || (p - digits > 1 && *digits == '0') || *p == '.' ||
            *p == 'e' || *p == 'E') {
            return 0;
        }
    }
    }
after: /* a value was read */
    if (depth == 0) {
        parser->p = (const char *)p;
        return 1;
    }
    SPACE();
    if (*p == ',') {
        p++;
        if (open[depth - 1] == ']') {
            goto value;
        }
        goto member;
    }
    if (*p != open[depth - 1]) {
        return 0;
    }
    p++;
    depth--;
    goto after;
member:
    SPACE();
    if (*p != '"' || (p = skip_string(p, end)) == NULL) {
        return 0;
    }
    SPACE();
    if (*p != ':') {
        return 0;
    }
    p++;
    goto value;
#undef SPACE
}

/* A whole record (parse_change, or parse_envelope when `envelope`), or None. */
static PyObject *
parse_whole_record(PyObject *data, int envelope)
{
    if (!PyBytes_CheckExact(data)) {
        Py_RETURN_NONE;
    }
    Parser parser;
    parser.p = PyBytes_AS_STRING(data);
    parser.end = parser.p + PyBytes_GET_SIZE(data);
    parser.depth = 0;
    parser.level = 1;
    parser.in_keys = 0;
    parser.envelope = envelope;
    parser.seen_count = 0;
    PyObject *record = NULL;
    if (peek(&parser) == '{') {
        record = parse_object(&parser, LEVEL_RECORD);
    }
    else {
        irregular();
    }
    for (int i = 0; i < parser.seen_count; i++) {
        Py_DECREF(parser.seen[i].number);
    }
    if (record != NULL) {
        skip_space(&parser);
        if (parser.p != parser.end) {
            Py_CLEAR(record); /* trailing data */
            irregular();
        }
    }
    return finish(record);
}

static PyObject *
parse_change(PyObject *module, PyObject *data)
{
    return configured() ? parse_whole_record(data, 0) : NULL;
}

/* parse_envelope(data): a destination record as plain values, its dynamodb.Keys as typed JSON
 * and each item image (NewImage, OldImage) that is an object checked as JSON, not built, and
 * given as `...`; None for anything irregular (as parse_json: a duplicate key outside the item
 * images, a float, invalid JSON anywhere...). The envelope path of kinesis.py. */
static PyObject *
parse_envelope(PyObject *module, PyObject *data)
{
    return parse_whole_record(data, 1);
}

/* regular_keys(keys): whether typed-JSON Keys are a primary key as DynamoDB has them: one or
 * two attributes, each {"S"|"N"|"B": payload} (payloads are checked by the views). */
static PyObject *
regular_keys(PyObject *module, PyObject *keys)
{
    if (!PyDict_CheckExact(keys) || PyDict_GET_SIZE(keys) < 1 || PyDict_GET_SIZE(keys) > 2) {
        Py_RETURN_FALSE;
    }
    Py_ssize_t position = 0;
    PyObject *name, *value;
    while (PyDict_Next(keys, &position, &name, &value)) {
        if (!PyDict_CheckExact(value) || PyDict_GET_SIZE(value) != 1) {
            Py_RETURN_FALSE;
        }
        Py_ssize_t inner = 0, length;
        PyObject *tag, *payload;
        PyDict_Next(value, &inner, &tag, &payload);
        const char *text = tag_text(tag, &length);
        if (text == NULL || length != 1 || (text[0] != 'S' && text[0] != 'N' && text[0] != 'B')) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

/* parse_json(data): a whole JSON document (a record, with its images as typed JSON) as plain
 * values, as orjson gives them, or None for anything irregular: a duplicate key anywhere (which
 * orjson and every other parser would silently resolve), a float or an integer over 18 digits,
 * nesting over MAX_DEPTH, lone surrogate escapes, and all invalid JSON. The caller then parses
 * it the general way, which finds the duplicate or gives the precise error. */
static PyObject *
parse_json(PyObject *module, PyObject *data)
{
    if (!PyBytes_CheckExact(data)) {
        Py_RETURN_NONE;
    }
    Parser parser;
    parser.p = PyBytes_AS_STRING(data);
    parser.end = parser.p + PyBytes_GET_SIZE(data);
    parser.depth = 0;
    parser.level = 1;
    parser.in_keys = 0;
    parser.envelope = 0;
    parser.seen_count = 0;
    PyObject *document = parse_generic(&parser, LEVEL_OTHER);
    if (document != NULL) {
        skip_space(&parser);
        if (parser.p != parser.end) {
            Py_CLEAR(document); /* trailing data */
            irregular();
        }
    }
    return finish(document);
}

/* --- objects of slotted classes, built without their __init__ --------------------------------
 *
 * A frozen dataclass sets each field through object.__setattr__, about 150 ns a field here;
 * the decoders build three such objects per record (position, event, images). layout(cls,
 * names) finds where those slots are; build(layout, *values) makes an instance with those
 * values, as cls(*values) would without its checks; slots past the values given are None. */

#define LAYOUT_NAME "consumer.records._speedups.layout"

typedef struct {
    PyTypeObject *type;
    Py_ssize_t count;
    Py_ssize_t offsets[];
} Layout;

static void
free_layout(PyObject *capsule)
{
    Layout *layout = PyCapsule_GetPointer(capsule, LAYOUT_NAME);
    Py_XDECREF(layout->type);
    PyMem_Free(layout);
}

static PyObject *
layout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyTuple_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "layout(cls, names) takes a class and a tuple");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    Py_ssize_t count = PyTuple_GET_SIZE(args[1]);
    Layout *out = PyMem_Malloc(sizeof(Layout) + (size_t)count * sizeof(Py_ssize_t));
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    out->type = (PyTypeObject *)Py_NewRef(type);
    out->count = count;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *slot = PyObject_GetAttr(args[0], PyTuple_GET_ITEM(args[1], i));
        int ok = slot != NULL && Py_IS_TYPE(slot, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)slot)->d_member->type == T_OBJECT_EX &&
                 ((PyMemberDescrObject *)slot)->d_common.d_type == type;
        if (ok) {
            out->offsets[i] = ((PyMemberDescrObject *)slot)->d_member->offset;
        }
        Py_XDECREF(slot);
        if (!ok) {
            Py_DECREF(type);
            PyMem_Free(out);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "layout(): each name must be a slot of cls");
            }
            return NULL;
        }
    }
    PyObject *capsule = PyCapsule_New(out, LAYOUT_NAME, free_layout);
    if (capsule == NULL) {
        Py_DECREF(type);
        PyMem_Free(out);
    }
    return capsule;
}

static PyObject *
build(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Layout *layout = nargs > 0 ? PyCapsule_GetPointer(args[0], LAYOUT_NAME) : NULL;
    if (layout == NULL || nargs - 1 > layout->count) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "build(layout, *values): at most one value per slot");
        }
        return NULL;
    }
    PyObject *object = layout->type->tp_alloc(layout->type, 0);
    if (object != NULL) {
        for (Py_ssize_t i = 0; i < layout->count; i++) {
            PyObject *value = i + 1 < nargs ? args[i + 1] : Py_None;
            *(PyObject **)((char *)object + layout->offsets[i]) = Py_NewRef(value);
        }
    }
    return object;
}

static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "configure(create_number, decode_binary, json_number, "
                                         "binary_text, decimal_new) takes five callables");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!PyCallable_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "configure() takes callables");
            return NULL;
        }
    }
    if (literal_name == NULL && (literal_name = PyUnicode_InternFromString("literal")) == NULL) {
        return NULL;
    }
    Py_XSETREF(decimal_new, Py_NewRef(args[4]));
    Py_XSETREF(create_number, Py_NewRef(args[0]));
    Py_XSETREF(decode_binary, Py_NewRef(args[1]));
    Py_XSETREF(json_number, Py_NewRef(args[2]));
    Py_XSETREF(binary_text, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(create_number, decode_binary, json_number, binary_text, decimal_new): the "
     "number and binary converters to use."},
    {"item_to_json", item_to_json, METH_O,
     "item_to_json(item): the json view of a regular item, or None."},
    {"item_to_client", item_to_client, METH_O,
     "item_to_client(item): the item itself if it is regular and holds no binary text, or "
     "None."},
    {"regular_keys", regular_keys, METH_O,
     "regular_keys(keys): whether typed-JSON Keys are one or two S, N or B values."},
    {"parse_json", parse_json, METH_O,
     "parse_json(data): a JSON document as plain values, or None (a duplicate key, a float, "
     "...)."},
    {"layout", (PyCFunction)(void (*)(void))layout, METH_FASTCALL,
     "layout(cls, names): where those slots of cls are, for build()."},
    {"build", (PyCFunction)(void (*)(void))build, METH_FASTCALL,
     "build(layout, *values): an instance of the layout's class with those slot values (None "
     "past them)."},
    {"parse_envelope", parse_envelope, METH_O,
     "parse_envelope(data): a destination record with its item images checked, not built, or "
     "None."},
    {"parse_change", parse_change, METH_O,
     "parse_change(data): a destination record with its images as python views, or None."},
    {"item_to_python", item_to_python, METH_O,
     "item_to_python(item): the python view of a regular item, or None."},
    {"item_to_python_sharing", (PyCFunction)(void (*)(void))item_to_python_sharing,
     METH_FASTCALL,
     "item_to_python_sharing(item, known_wire, known): item_to_python reusing known values "
     "where the typed JSON is equal, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    "consumer.records._speedups",
    "The python view of regular DynamoDB typed JSON, in C (see attribute.py).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module = PyModule_Create(&module_definition);
    if (module == NULL) {
        return NULL;
    }
    for (int c = 0; c < 256; c++) {
        plain_bytes[c] = (unsigned char)plain_byte((unsigned char)c);
    }
    Irregular = PyErr_NewException("consumer.records._speedups.Irregular", NULL, NULL);
    if (Irregular == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
