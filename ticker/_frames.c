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

#include <errno.h>
#include <sys/socket.h>

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

/* The size of one "ticks" frame of ticks[0..count), with the WebSocket header when asked. */
static Py_ssize_t
frame_size(PyObject **ticks, Py_ssize_t count, Py_ssize_t affixes, int ws_header,
           Py_ssize_t *payload_out)
{
    Py_ssize_t payload = affixes + (count > 0 ? count - 1 : 0);
    for (Py_ssize_t i = 0; i < count; i++) {
        payload += PyBytes_GET_SIZE(ticks[i]);
    }
    *payload_out = payload;
    return (!ws_header ? 0 : payload < 126 ? 2 : payload < 65536 ? 4 : 10) + payload;
}

/* Writes that frame at out (frame_size bytes); returns the end. */
static unsigned char *
write_frame(unsigned char *out, PyObject **ticks, Py_ssize_t count, Py_ssize_t payload,
            int ws_header, const char *prefix, Py_ssize_t prefix_length, const char *suffix,
            Py_ssize_t suffix_length)
{
    if (ws_header) {
        out[0] = 0x81;  /* FIN, text; a server's frames are not masked (RFC 6455 5.2) */
        if (payload < 126) {
            out[1] = (unsigned char)payload;
            out += 2;
        } else if (payload < 65536) {
            out[1] = 126;
            out[2] = (unsigned char)(payload >> 8);
            out[3] = (unsigned char)payload;
            out += 4;
        } else {
            out[1] = 127;
            for (int i = 0; i < 8; i++) {
                out[2 + i] = (unsigned char)((unsigned long long)payload >> (56 - 8 * i));
            }
            out += 10;
        }
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
    return out + suffix_length;
}

/* What one drain took: every due tick of every cursor, merged into feed order. */
typedef struct {
    Run *runs;
    Py_ssize_t taken;      /* runs[0..taken) hold references */
    PyObject **merged;     /* borrowed from the rings, which the runs hold */
    Py_ssize_t total;
} Drain;

static void
drain_release(Drain *drain)
{
    if (drain->runs != NULL) {
        release_runs(drain->runs, drain->taken);
    }
    PyMem_Free(drain->runs);
    PyMem_Free(drain->merged);
}

/* Reads the cursors and merges their ticks; moves nothing. 0 = done, 2 = hand back to Python
 * (nothing taken), -1 = error. drain_release() afterwards in every case. */
static int
drain_collect(PyObject *cursors, long long max_lag, Drain *drain)
{
    Py_ssize_t size = PyDict_GET_SIZE(cursors);
    Head *heap = NULL;
    Py_ssize_t heap_size = 0;
    int status = -1;
    memset(drain, 0, sizeof(*drain));
    drain->runs = PyMem_Calloc(size ? size : 1, sizeof(Run));
    heap = PyMem_Calloc(size ? size : 1, sizeof(Head));
    if (drain->runs == NULL || heap == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t position = 0;
    PyObject *key, *cursor;
    while (PyDict_Next(cursors, &position, &key, &cursor)) {
        int got = read_cursor(cursor, max_lag, &drain->runs[drain->taken]);
        if (got < 0) {
            drain->taken++;  /* read_cursor may have taken references into this slot */
            goto done;
        }
        if (got == 2) {
            status = 2;
            goto done;
        }
        if (got == 1) {
            drain->total += drain->runs[drain->taken].count;
            drain->taken++;
        }
    }
    drain->merged = PyMem_Calloc(drain->total ? drain->total : 1, sizeof(PyObject *));
    if (drain->merged == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Run *runs = drain->runs;
    for (Py_ssize_t i = 0; i < drain->taken; i++) {
        if (runs[i].count > 0) {
            heap[heap_size].key = run_key(&runs[i]);
            heap[heap_size].run = i;
            heap_size++;
        }
    }
    for (Py_ssize_t at = heap_size / 2 - 1; at >= 0; at--) {
        sift_down(heap, heap_size, at);
    }
    for (Py_ssize_t out = 0; out < drain->total; out++) {
        Run *run = &runs[heap[0].run];
        PyObject *tick = PyList_GET_ITEM(run->ring, ring_index(run, run->next));
        if (!PyBytes_Check(tick)) {
            PyErr_SetString(PyExc_TypeError, "encoded ticks must be bytes");
            goto done;
        }
        drain->merged[out] = tick;
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
    status = 0;
done:
    PyMem_Free(heap);
    return status;
}

/* Moves every cursor of the drain past what it took; call only once nothing else can fail. */
static int
drain_commit(Drain *drain)
{
    for (Py_ssize_t i = 0; i < drain->taken; i++) {
        PyObject *last = PyLong_FromLongLong(drain->runs[i].last);
        if (last == NULL || slot_set(&s_seq, drain->runs[i].cursor, last) < 0
                || slot_set(&s_fresh, drain->runs[i].cursor, Py_False) < 0) {
            Py_XDECREF(last);
            return -1;
        }
        Py_DECREF(last);
    }
    return 0;
}

typedef struct {
    PyObject *cursors;
    long long max_lag;
    Py_ssize_t step;
    const char *prefix, *suffix;
    Py_ssize_t prefix_length, suffix_length;
} DrainArgs;

static int
parse_drain_args(const char *name, PyObject *const *args, DrainArgs *out)
{
    if (!PyDict_Check(args[0]) || !PyBytes_Check(args[3]) || !PyBytes_Check(args[4])) {
        PyErr_Format(PyExc_TypeError, "%s(cursors: dict, max_lag, step, prefix: bytes, "
                     "suffix: bytes, ...)", name);
        return -1;
    }
    out->cursors = args[0];
    out->max_lag = PyLong_AsLongLong(args[1]);
    out->step = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (out->step < 1) {
        PyErr_SetString(PyExc_ValueError, "step must be >= 1");
        return -1;
    }
    out->prefix = PyBytes_AS_STRING(args[3]);
    out->prefix_length = PyBytes_GET_SIZE(args[3]);
    out->suffix = PyBytes_AS_STRING(args[4]);
    out->suffix_length = PyBytes_GET_SIZE(args[4]);
    return 0;
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
    DrainArgs a;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "take_frames takes 6 arguments");
        return NULL;
    }
    int ws_header = PyObject_IsTrue(args[5]);
    if (ws_header < 0 || parse_drain_args("take_frames", args, &a) < 0) {
        return NULL;
    }
    Drain drain;
    PyObject *result = NULL, *frames = NULL;
    int status = drain_collect(a.cursors, a.max_lag, &drain);
    if (status != 0) {
        result = status == 2 ? Py_NewRef(Py_None) : NULL;
        goto done;
    }
    frames = PyList_New(0);
    if (frames == NULL) {
        goto done;
    }
    for (Py_ssize_t start = 0; start < drain.total; start += a.step) {
        Py_ssize_t count = drain.total - start < a.step ? drain.total - start : a.step;
        Py_ssize_t payload;
        Py_ssize_t size = frame_size(drain.merged + start, count,
                                     a.prefix_length + a.suffix_length, ws_header, &payload);
        PyObject *frame = PyBytes_FromStringAndSize(NULL, size);
        if (frame == NULL) {
            goto done;
        }
        write_frame((unsigned char *)PyBytes_AS_STRING(frame), drain.merged + start, count,
                    payload, ws_header, a.prefix, a.prefix_length, a.suffix, a.suffix_length);
        if (PyList_Append(frames, frame) < 0) {
            Py_DECREF(frame);
            goto done;
        }
        Py_DECREF(frame);
    }
    /* Only now that nothing can fail does any cursor move. */
    if (drain_commit(&drain) < 0) {
        goto done;
    }
    result = Py_BuildValue("(OnO)", frames, drain.total,
                           drain.total ? drain.merged[0] : Py_None);
done:
    Py_XDECREF(frames);
    drain_release(&drain);
    return result;
}

PyDoc_STRVAR(send_frames_doc,
"send_frames(cursors, max_lag, step, prefix, suffix, fd) -> (ticks, first, frames, payload,\n"
"unsent) | None\n\n"
"take_frames(..., ws_header=True), with the frames written straight to the non-blocking\n"
"socket fd in one send() instead of returned: ticks and first as there, then how many frames\n"
"and payload bytes were taken, and unsent: None when the kernel took everything, else the\n"
"bytes it did not take (a partial send, EAGAIN, or an error such as EPIPE), for the caller's\n"
"transport to write or fail on in its own way. None, touching nothing, where take_frames\n"
"hands back to Python. The cursors move before the send: what the kernel refuses is in\n"
"unsent, not lost.");

static PyObject *
send_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    DrainArgs a;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "send_frames takes 6 arguments");
        return NULL;
    }
    long fd = PyLong_AsLong(args[5]);
    if ((fd == -1 && PyErr_Occurred()) || parse_drain_args("send_frames", args, &a) < 0) {
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fd must be >= 0");
        return NULL;
    }
    Drain drain;
    PyObject *result = NULL, *out = NULL, *unsent = NULL;
    int status = drain_collect(a.cursors, a.max_lag, &drain);
    if (status != 0) {
        result = status == 2 ? Py_NewRef(Py_None) : NULL;
        goto done;
    }
    Py_ssize_t length = 0, payloads = 0, frames = 0;
    Py_ssize_t affixes = a.prefix_length + a.suffix_length;
    for (Py_ssize_t start = 0; start < drain.total; start += a.step, frames++) {
        Py_ssize_t count = drain.total - start < a.step ? drain.total - start : a.step;
        Py_ssize_t payload;
        length += frame_size(drain.merged + start, count, affixes, 1, &payload);
        payloads += payload;
    }
    /* One buffer for every frame: one send(), and on the usual small drain no allocation
     * beyond it. */
    out = PyBytes_FromStringAndSize(NULL, length);
    if (out == NULL) {
        goto done;
    }
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t start = 0; start < drain.total; start += a.step) {
        Py_ssize_t count = drain.total - start < a.step ? drain.total - start : a.step;
        Py_ssize_t payload;
        frame_size(drain.merged + start, count, affixes, 1, &payload);
        at = write_frame(at, drain.merged + start, count, payload, 1, a.prefix,
                         a.prefix_length, a.suffix, a.suffix_length);
    }
    if (drain_commit(&drain) < 0) {
        goto done;
    }
    Py_ssize_t sent = 0;
    while (sent < length) {
        ssize_t n = send((int)fd, PyBytes_AS_STRING(out) + sent, (size_t)(length - sent),
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;  /* EAGAIN, or an error: the transport meets it when it writes the rest */
        }
        sent += n;
    }
    if (sent == length) {
        unsent = Py_NewRef(Py_None);
    } else if (sent == 0) {
        unsent = Py_NewRef(out);
    } else {
        unsent = PyBytes_FromStringAndSize(PyBytes_AS_STRING(out) + sent, length - sent);
        if (unsent == NULL) {
            goto done;  /* the cursors moved and the rest is lost: only when memory is gone */
        }
    }
    result = Py_BuildValue("(nOnnN)", drain.total, drain.total ? drain.merged[0] : Py_None,
                           frames, payloads, unsent);
done:
    Py_XDECREF(out);
    drain_release(&drain);
    return result;
}

static PyMethodDef methods[] = {
    {"take_frames", (PyCFunction)(void (*)(void))take_frames, METH_FASTCALL, take_frames_doc},
    {"send_frames", (PyCFunction)(void (*)(void))send_frames, METH_FASTCALL, send_frames_doc},
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
