/* One of the fan-out's compiled pieces: merging a connection's runs of ticks into feed order.
 *
 * A drain takes, per subscribed symbol, a run of encoded ticks and their places in the feed (see
 * ticker/subscriber.py). Clients must get them in feed order across symbols; in Python the merge
 * costs about 100 ns a tick and a method call or two per run, which doubled the cost of a drain at
 * 10-30 ticks. Here it is a k-way merge over a binary heap of run heads: a few ns a tick.
 * ticker/feed_order.py falls back to the same merge in Python when this module is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_heap.h"

typedef struct {
    long long *ring;    /* the history's ring of places */
    Py_ssize_t length;  /* its length */
    Py_ssize_t start;   /* where the run's first place is in it */
} Places;

static inline long long
place(const Places *places, Py_ssize_t index)
{
    Py_ssize_t at = places->start + index;
    return places->ring[at < places->length ? at : at - places->length];
}


PyDoc_STRVAR(merge_doc,
"merge(runs) -> list[bytes]\n\n"
"runs: a list of (symbol, first_seq, ticks, ring, start): ticks a list of bytes, ring an\n"
"array('q') of places in which ticks[j] has ring[(start + j) % len(ring)], rising in each run.\n"
"Returns every tick, merged by place.");

static PyObject *
merge(PyObject *module, PyObject *runs)
{
    if (!PyList_Check(runs)) {
        PyErr_SetString(PyExc_TypeError, "runs must be a list");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(runs);
    PyObject **ticks = PyMem_Calloc(count ? count : 1, sizeof(PyObject *));
    Py_buffer *buffers = PyMem_Calloc(count ? count : 1, sizeof(Py_buffer));
    Places *places = PyMem_Calloc(count ? count : 1, sizeof(Places));
    Head *heap = PyMem_Calloc(count ? count : 1, sizeof(Head));
    PyObject *merged = NULL;
    Py_ssize_t acquired = 0, total = 0, size = 0;
    if (ticks == NULL || buffers == NULL || places == NULL || heap == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *run = PyList_GET_ITEM(runs, i);
        if (!PyTuple_Check(run) || PyTuple_GET_SIZE(run) < 5
                || !PyList_Check(PyTuple_GET_ITEM(run, 2))) {
            PyErr_SetString(PyExc_TypeError, "a run is (symbol, first_seq, ticks, ring, start)");
            goto done;
        }
        ticks[i] = PyTuple_GET_ITEM(run, 2);
        Py_ssize_t start = PyLong_AsSsize_t(PyTuple_GET_ITEM(run, 4));
        if (start == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(run, 3), &buffers[i],
                               PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
            goto done;
        }
        acquired++;
        Py_ssize_t length = PyList_GET_SIZE(ticks[i]);
        Py_ssize_t ring_length = buffers[i].len / (Py_ssize_t)sizeof(long long);
        if (buffers[i].itemsize != sizeof(long long) || buffers[i].format == NULL
                || strcmp(buffers[i].format, "q") != 0
                || (length > 0 && (start < 0 || start >= ring_length || length > ring_length))) {
            PyErr_SetString(PyExc_ValueError,
                            "ring must be an array('q') holding every place of the run");
            goto done;
        }
        places[i].ring = (long long *)buffers[i].buf;
        places[i].length = ring_length;
        places[i].start = start;
        total += length;
        if (length > 0) {
            heap[size].key = place(&places[i], 0);
            heap[size].run = i;
            heap[size].next = 0;
            size++;
        }
    }
    for (Py_ssize_t at = size / 2 - 1; at >= 0; at--) {
        sift_down(heap, size, at);
    }
    merged = PyList_New(total);
    if (merged == NULL) {
        goto done;
    }
    for (Py_ssize_t out = 0; out < total; out++) {
        Head *top = &heap[0];
        PyObject *tick = PyList_GET_ITEM(ticks[top->run], top->next);
        Py_INCREF(tick);
        PyList_SET_ITEM(merged, out, tick);
        top->next++;
        if (top->next < PyList_GET_SIZE(ticks[top->run])) {
            top->key = place(&places[top->run], top->next);
        } else {
            heap[0] = heap[--size];
        }
        if (size > 0) {
            sift_down(heap, size, 0);
        }
    }
done:
    for (Py_ssize_t i = 0; i < acquired; i++) {
        PyBuffer_Release(&buffers[i]);
    }
    PyMem_Free(ticks);
    PyMem_Free(buffers);
    PyMem_Free(places);
    PyMem_Free(heap);
    return merged;
}

static PyMethodDef methods[] = {
    {"merge", merge, METH_O, merge_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef order_module = {
    PyModuleDef_HEAD_INIT, "ticker._order",
    "Ticks of several symbols merged into feed order (see ticker/feed_order.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__order(void)
{
    return PyModule_Create(&order_module);
}
