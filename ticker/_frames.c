/* A connection's drain in one call: every tick due after its cursors, merged into feed order and
 * cut into ready-to-send "ticks" frames.
 *
 * Profiled at 1000 clients x 10 symbols (py-spy, 2026-12-03), the Python drain (walking the
 * cursors, slicing each history, merging, joining, prefixing a WebSocket header) cost as much
 * of the server's core as the send() after it. Here the cursors and histories are read in place
 * and each frame is built in one allocation. ticker/subscriber.py keeps the same drain in Python,
 * used where this module is not built and for whatever this one hands back (a conflated cursor,
 * a slow consumer), and the tests hold the two equal.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_heap.h"
#include "_slots.h"

/* A cursor's attributes, and its history's. */
static Slot s_history = {"history"}, s_seq = {"seq"}, s_fresh = {"fresh"},
            s_interval = {"interval"}, s_armed = {"armed"}, s_last = {"last"},
            s_first = {"first"}, s_ring = {"_ring"}, s_places = {"_places"},
            s_capacity = {"_capacity"}, s_origin = {"_origin"};

typedef struct {
    PyObject *cursor;       /* borrowed from the dict */
    PyObject *history;      /* owned */
    PyObject *ring;         /* owned: list of encoded ticks */
    Py_buffer places;       /* the ring's places in the feed, array('q') */
    int has_places;
    long long last;         /* the history's newest seq: where the cursor moves to */
    Py_ssize_t capacity;
    Py_ssize_t begin;       /* index in the ring of the run's first tick */
    Py_ssize_t count;       /* ticks in the run */
    Py_ssize_t next;        /* ticks of the run merged so far */
} Run;


static inline Py_ssize_t
ring_index(const Run *run, Py_ssize_t offset)
{
    Py_ssize_t at = run->begin + offset;
    return at < run->capacity ? at : at - run->capacity;
}

static inline long long
run_key(const Run *run)
{
    return ((const long long *)run->places.buf)[ring_index(run, run->next)];
}


/* Reads one cursor; 1 = a run taken (maybe empty), 0 = nothing due, 2 = hand back to Python,
 * -1 = error. */
static int
read_cursor(PyObject *cursor, long long max_lag, Run *run)
{
    PyObject *history = slot_get(&s_history, cursor);
    if (history == NULL) {
        return -1;
    }
    long long last = slot_long(&s_last, history);
    long long seq = slot_long(&s_seq, cursor);
    if (PyErr_Occurred()) {
        Py_DECREF(history);
        return -1;
    }
    if (last == seq) {
        Py_DECREF(history);
        return 0;
    }
    PyObject *interval = slot_get(&s_interval, cursor);
    PyObject *fresh = slot_get(&s_fresh, cursor);
    int conflated = interval != NULL ? PyObject_IsTrue(interval) : -1;
    int is_fresh = fresh != NULL ? PyObject_IsTrue(fresh) : -1;
    Py_XDECREF(interval);
    Py_XDECREF(fresh);
    if (conflated < 0 || is_fresh < 0) {
        Py_DECREF(history);
        return -1;
    }
    if (conflated) {
        /* Armed: its timer will wake the connection when the update is due, so nothing is due
         * now (as in Python). Otherwise Python decides, and may send the latest tick. */
        PyObject *armed = slot_get(&s_armed, cursor);
        int is_armed = armed != NULL ? PyObject_IsTrue(armed) : -1;
        Py_XDECREF(armed);
        Py_DECREF(history);
        return is_armed < 0 ? -1 : is_armed ? 0 : 2;
    }
    if (!is_fresh && last - seq > max_lag) {
        Py_DECREF(history);
        return 2;
    }
    run->cursor = cursor;
    run->history = history;
    run->last = last;
    run->count = 0;
    run->next = 0;
    if (seq >= last) {
        return 1;  /* the cursor is past a history that started over: it moves back, no ticks */
    }
    long long first = slot_long(&s_first, history);
    long long origin = slot_long(&s_origin, history);
    long long capacity = slot_long(&s_capacity, history);
    if (PyErr_Occurred()) {
        return -1;
    }
    run->ring = slot_get(&s_ring, history);
    if (run->ring == NULL) {
        return -1;
    }
    if (!PyList_Check(run->ring) || capacity <= 0) {
        PyErr_SetString(PyExc_TypeError, "a history's ring must be a list");
        return -1;
    }
    PyObject *places = slot_get(&s_places, history);
    if (places == NULL) {
        return -1;
    }
    int got = PyObject_GetBuffer(places, &run->places, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS);
    Py_DECREF(places);
    if (got < 0) {
        return -1;
    }
    run->has_places = 1;
    long long begin_seq = seq + 1 > first ? seq + 1 : first;
    run->capacity = (Py_ssize_t)capacity;
    run->begin = (Py_ssize_t)(((begin_seq - origin) % capacity + capacity) % capacity);
    run->count = (Py_ssize_t)(last - begin_seq + 1);
    Py_ssize_t ring_length = PyList_GET_SIZE(run->ring);
    if (run->places.itemsize != sizeof(long long) || run->places.format == NULL
            || strcmp(run->places.format, "q") != 0
            || run->places.len / (Py_ssize_t)sizeof(long long) != ring_length
            || run->count > ring_length || run->begin >= ring_length
            || (ring_length < run->capacity && run->begin + run->count > ring_length)) {
        PyErr_SetString(PyExc_ValueError, "a history's ring and places disagree with its seqs");
        return -1;
    }
    return 1;
}

static void
release_runs(Run *runs, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(runs[i].history);
        Py_XDECREF(runs[i].ring);
        if (runs[i].has_places) {
            PyBuffer_Release(&runs[i].places);
        }
    }
}

/* One "ticks" frame of ticks[0..count), with the WebSocket header in front when asked. */
static PyObject *
build_frame(PyObject **ticks, Py_ssize_t count, const char *prefix, Py_ssize_t prefix_length,
            const char *suffix, Py_ssize_t suffix_length, int ws_header)
{
    Py_ssize_t payload = prefix_length + suffix_length + (count > 0 ? count - 1 : 0);
    for (Py_ssize_t i = 0; i < count; i++) {
        payload += PyBytes_GET_SIZE(ticks[i]);
    }
    Py_ssize_t header = !ws_header ? 0 : payload < 126 ? 2 : payload < 65536 ? 4 : 10;
    PyObject *frame = PyBytes_FromStringAndSize(NULL, header + payload);
    if (frame == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(frame);
    if (header) {
        out[0] = 0x81;  /* FIN, text; a server's frames are not masked (RFC 6455 5.2) */
        if (header == 2) {
            out[1] = (unsigned char)payload;
        } else if (header == 4) {
            out[1] = 126;
            out[2] = (unsigned char)(payload >> 8);
            out[3] = (unsigned char)payload;
        } else {
            out[1] = 127;
            for (int i = 0; i < 8; i++) {
                out[2 + i] = (unsigned char)((unsigned long long)payload >> (56 - 8 * i));
            }
        }
        out += header;
    }
    memcpy(out, prefix, prefix_length);
    out += prefix_length;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i) {
            *out++ = ',';
        }
        Py_ssize_t length = PyBytes_GET_SIZE(ticks[i]);
        memcpy(out, PyBytes_AS_STRING(ticks[i]), length);
        out += length;
    }
    memcpy(out, suffix, suffix_length);
    return frame;
}

PyDoc_STRVAR(take_frames_doc,
"take_frames(cursors, max_lag, step, prefix, suffix, ws_header) -> (frames, ticks, first) | None\n\n"
"cursors: a dict of ticker.subscriber cursors. Takes every tick due after them, in feed order,\n"
"as frames of at most step ticks (prefix + ticks joined by ',' + suffix, with a WebSocket text\n"
"header in front if ws_header), and moves the cursors past them. Returns the frames, how many\n"
"ticks they carry and the first of them; or None, touching nothing, when the drain must be\n"
"done in Python: a conflated cursor not armed has ticks, or one lags by more than max_lag\n"
"(an armed conflated cursor has nothing due).");

static PyObject *
take_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyDict_Check(args[0]) || !PyBytes_Check(args[3])
            || !PyBytes_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "take_frames(cursors: dict, max_lag, step, prefix: bytes, suffix: bytes, "
                        "ws_header)");
        return NULL;
    }
    PyObject *cursors = args[0];
    long long max_lag = PyLong_AsLongLong(args[1]);
    Py_ssize_t step = PyLong_AsSsize_t(args[2]);
    int ws_header = PyObject_IsTrue(args[5]);
    if (PyErr_Occurred() || ws_header < 0) {
        return NULL;
    }
    if (step < 1) {
        PyErr_SetString(PyExc_ValueError, "step must be >= 1");
        return NULL;
    }
    Py_ssize_t size = PyDict_GET_SIZE(cursors);
    Run *runs = PyMem_Calloc(size ? size : 1, sizeof(Run));
    Head *heap = PyMem_Calloc(size ? size : 1, sizeof(Head));
    PyObject **merged = NULL;
    PyObject *result = NULL, *frames = NULL;
    Py_ssize_t taken = 0, total = 0, heap_size = 0;
    if (runs == NULL || heap == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t position = 0;
    PyObject *key, *cursor;
    while (PyDict_Next(cursors, &position, &key, &cursor)) {
        int got = read_cursor(cursor, max_lag, &runs[taken]);
        if (got < 0) {
            taken++;  /* read_cursor may have taken references into this slot */
            goto done;
        }
        if (got == 2) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        if (got == 1) {
            total += runs[taken].count;
            taken++;
        }
    }
    merged = PyMem_Calloc(total ? total : 1, sizeof(PyObject *));
    if (merged == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < taken; i++) {
        if (runs[i].count > 0) {
            heap[heap_size].key = run_key(&runs[i]);
            heap[heap_size].run = i;
            heap_size++;
        }
    }
    for (Py_ssize_t at = heap_size / 2 - 1; at >= 0; at--) {
        sift_down(heap, heap_size, at);
    }
    for (Py_ssize_t out = 0; out < total; out++) {
        Run *run = &runs[heap[0].run];
        PyObject *tick = PyList_GET_ITEM(run->ring, ring_index(run, run->next));
        if (!PyBytes_Check(tick)) {
            PyErr_SetString(PyExc_TypeError, "encoded ticks must be bytes");
            goto done;
        }
        merged[out] = tick;
        run->next++;
        if (run->next < run->count) {
            heap[0].key = run_key(run);
        } else {
            heap[0] = heap[--heap_size];
        }
        if (heap_size > 0) {
            sift_down(heap, heap_size, 0);
        }
    }
    frames = PyList_New(0);
    if (frames == NULL) {
        goto done;
    }
    for (Py_ssize_t start = 0; start < total; start += step) {
        Py_ssize_t count = total - start < step ? total - start : step;
        PyObject *frame = build_frame(merged + start, count, PyBytes_AS_STRING(args[3]),
                                      PyBytes_GET_SIZE(args[3]), PyBytes_AS_STRING(args[4]),
                                      PyBytes_GET_SIZE(args[4]), ws_header);
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            goto done;
        }
        Py_DECREF(frame);
    }
    /* Only now that nothing can fail does any cursor move. */
    for (Py_ssize_t i = 0; i < taken; i++) {
        PyObject *last = PyLong_FromLongLong(runs[i].last);
        if (last == NULL || slot_set(&s_seq, runs[i].cursor, last) < 0
                || slot_set(&s_fresh, runs[i].cursor, Py_False) < 0) {
            Py_XDECREF(last);
            goto done;
        }
        Py_DECREF(last);
    }
    result = Py_BuildValue("(OnO)", frames, total, total ? merged[0] : Py_None);
done:
    Py_XDECREF(frames);
    if (runs != NULL) {
        release_runs(runs, taken);
    }
    PyMem_Free(runs);
    PyMem_Free(heap);
    PyMem_Free(merged);
    return result;
}

static PyMethodDef methods[] = {
    {"take_frames", (PyCFunction)(void (*)(void))take_frames, METH_FASTCALL, take_frames_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef frames_module = {
    PyModuleDef_HEAD_INIT, "ticker._frames",
    "A connection's due ticks as ready-to-send frames (see ticker/subscriber.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__frames(void)
{
    Slot *slots[] = {&s_history, &s_seq, &s_fresh, &s_interval, &s_armed, &s_last, &s_first,
                     &s_ring, &s_places, &s_capacity, &s_origin};
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
        if (slot_init(slots[i]) < 0) {
            return NULL;
        }
    }
    return PyModule_Create(&frames_module);
}
