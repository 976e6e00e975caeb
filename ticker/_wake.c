/* The hub's wake walk, compiled: after a batch, every subscriber of a symbol that ticked and is
 * not already pending gets woken.
 *
 * py-spy on the pinned server at 2M ticks/s delivered (2026-12-04, 1000 clients x 10 of 100
 * symbols): ~10 % of the core in this loop, in Python. Under load nearly every subscriber is
 * already pending (waiting its turn in the flush), so the walk is almost all reads of one slot; here
 * that read is a load at the slot's offset (ticker/_slots.h) instead of a bytecode round per entry.
 * ticker/hub.py walks in Python where this is not built (the same loop, tested alike).
 *
 * wake_idle(subscribers: dict) -> int: for each key whose ``pending`` is false, calls its
 * ``wake()``; returns how many it woke. Like a Python loop over the dict, raises RuntimeError if
 * a wake() changes the dict's size.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_slots.h"

static Slot s_pending = {"pending"};
static PyObject *s_wake;

/* 1 pending, 0 not, -1 error. */
static inline int
is_pending(PyObject *subscriber)
{
    PyObject *value = slot_get(&s_pending, subscriber);
    if (value == NULL)
        return -1;
    int truth = value == Py_True ? 1 : value == Py_False ? 0 : PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

PyDoc_STRVAR(wake_idle_doc,
"wake_idle(subscribers: dict) -> int\n\n"
"Calls wake() on every key whose pending is false; returns how many.");

static PyObject *
wake_idle(PyObject *module, PyObject *subscribers)
{
    if (!PyDict_Check(subscribers)) {
        PyErr_SetString(PyExc_TypeError, "wake_idle(subscribers: dict)");
        return NULL;
    }
    Py_ssize_t position = 0, size = PyDict_GET_SIZE(subscribers), woken = 0;
    PyObject *subscriber, *value;
    while (PyDict_Next(subscribers, &position, &subscriber, &value)) {
        int pending = is_pending(subscriber);
        if (pending < 0)
            return NULL;
        if (pending)
            continue;
        Py_INCREF(subscriber);  /* wake() may drop the dict's reference */
        PyObject *result = PyObject_CallMethodNoArgs(subscriber, s_wake);
        Py_DECREF(subscriber);
        if (result == NULL)
            return NULL;
        Py_DECREF(result);
        woken++;
        if (PyDict_GET_SIZE(subscribers) != size) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
            return NULL;
        }
    }
    return PyLong_FromSsize_t(woken);
}

static PyMethodDef methods[] = {
    {"wake_idle", wake_idle, METH_O, wake_idle_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wake_module = {
    PyModuleDef_HEAD_INIT, "ticker._wake",
    "The hub's wake walk, compiled (see ticker/hub.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__wake(void)
{
    s_wake = PyUnicode_InternFromString("wake");
    if (s_wake == NULL || slot_init(&s_pending) < 0)
        return NULL;
    return PyModule_Create(&wake_module);
}
