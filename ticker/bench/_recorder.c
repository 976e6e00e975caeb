/* The kernel-timestamp load generator's recording loop, compiled: epoll_wait, then one recvmsg
 * per readable socket, each read kept as Python's socket.recvmsg would have returned it.
 *
 * Why C: the load generator's core bounds what a run can measure. Sampled from /proc on
 * 2026-12-04 at 100k ticks/s delivered (1000 clients, one window each): with the event loop's
 * Python reader, user 17 % and system 37 % of its core; with this loop, user 10 % and system
 * 53 % (it reads sooner, so more and smaller reads). Most of a read is the kernel's (recvmsg,
 * and the ACKs it sends, whose loopback delivery runs on this core), so this removes the part
 * that is ours, and reads each socket as soon as it is readable. ticker/bench/recorder.py falls
 * back to the event loop's readers where this file was not compiled.
 *
 * record(epoll_fd, until_ns, read_bytes, logs, ended) -> reads
 *   epoll_fd: a select.epoll with every recorded socket registered for EPOLLIN (data.fd = fd)
 *   until_ns: CLOCK_REALTIME in ns at which to return
 *   logs: dict fd -> list; each read appends (read_ns, (data, ancdata, flags, None)) to its list
 *   ended: list; a socket that reads end-of-file (errno 0) or fails appends (fd, errno) and is
 *          unregistered
 *   returns the number of reads kept
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_EVENTS 1024
#define MAX_WAIT_MS 50 /* so Ctrl-C (a signal) is seen within this */

static long long realtime_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* [(SOL_SOCKET, SCM_TIMESTAMPNS, timespec bytes), ...] as socket.recvmsg gives ancillary data. */
static PyObject *ancillary(struct msghdr *message) {
    PyObject *items = PyList_New(0);
    if (items == NULL) return NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(message); c != NULL; c = CMSG_NXTHDR(message, c)) {
        Py_ssize_t length = (Py_ssize_t)(c->cmsg_len - CMSG_LEN(0));
        PyObject *item = Py_BuildValue("(iiy#)", c->cmsg_level, c->cmsg_type,
                                       (const char *)CMSG_DATA(c), length);
        if (item == NULL || PyList_Append(items, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(items);
            return NULL;
        }
        Py_DECREF(item);
    }
    return items;
}

static int keep(PyObject *records, char *buffer, ssize_t length, struct msghdr *message,
                long long read_ns) {
    PyObject *ancdata = ancillary(message);
    if (ancdata == NULL) return -1;
    PyObject *record = Py_BuildValue("(L(y#NiO))", read_ns, buffer, (Py_ssize_t)length, ancdata,
                                     message->msg_flags, Py_None);
    if (record == NULL) return -1;
    int failed = PyList_Append(records, record);
    Py_DECREF(record);
    return failed;
}

static int end(int epoll_fd, int fd, int error, PyObject *ended) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    PyObject *item = Py_BuildValue("(ii)", fd, error);
    if (item == NULL) return -1;
    int failed = PyList_Append(ended, item);
    Py_DECREF(item);
    return failed;
}

static PyObject *record(PyObject *module, PyObject *args) {
    int epoll_fd;
    long long until_ns;
    Py_ssize_t read_bytes;
    PyObject *logs, *ended;
    if (!PyArg_ParseTuple(args, "iLnO!O!", &epoll_fd, &until_ns, &read_bytes, &PyDict_Type, &logs,
                          &PyList_Type, &ended))
        return NULL;
    if (read_bytes <= 0) {
        PyErr_SetString(PyExc_ValueError, "read_bytes must be positive");
        return NULL;
    }
    char *buffer = PyMem_Malloc((size_t)read_bytes);
    if (buffer == NULL) return PyErr_NoMemory();
    /* room for one timestamp, and then some: a read carries one SCM_TIMESTAMPNS */
    char control[CMSG_SPACE(sizeof(struct timespec)) * 2];
    struct epoll_event events[MAX_EVENTS];
    Py_ssize_t kept = 0;
    for (;;) {
        long long left_ns = until_ns - realtime_ns();
        if (left_ns <= 0) break;
        int wait_ms = (int)((left_ns + 999999) / 1000000);
        if (wait_ms > MAX_WAIT_MS) wait_ms = MAX_WAIT_MS;
        int ready;
        Py_BEGIN_ALLOW_THREADS
        ready = epoll_wait(epoll_fd, events, MAX_EVENTS, wait_ms);
        Py_END_ALLOW_THREADS
        if (ready < 0) {
            if (errno == EINTR) {
                if (PyErr_CheckSignals() < 0) goto fail;
                continue;
            }
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            struct iovec part = {buffer, (size_t)read_bytes};
            struct msghdr message = {0};
            message.msg_iov = &part;
            message.msg_iovlen = 1;
            message.msg_control = control;
            message.msg_controllen = sizeof(control);
            ssize_t got = recvmsg(fd, &message, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
            if (got <= 0) {
                if (end(epoll_fd, fd, got < 0 ? errno : 0, ended) < 0) goto fail;
                continue;
            }
            long long read_ns = realtime_ns();
            PyObject *key = PyLong_FromLong(fd);
            if (key == NULL) goto fail;
            PyObject *records = PyDict_GetItemWithError(logs, key); /* borrowed */
            Py_DECREF(key);
            if (records == NULL) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_KeyError, "no log for file descriptor %d", fd);
                goto fail;
            }
            if (!PyList_Check(records)) {
                PyErr_SetString(PyExc_TypeError, "logs must map each fd to a list");
                goto fail;
            }
            if (keep(records, buffer, got, &message, read_ns) < 0) goto fail;
            kept++;
        }
        if (PyErr_CheckSignals() < 0) goto fail;
    }
    PyMem_Free(buffer);
    return PyLong_FromSsize_t(kept);
fail:
    PyMem_Free(buffer);
    return NULL;
}

static PyMethodDef methods[] = {
    {"record", record, METH_VARARGS,
     "record(epoll_fd, until_ns, read_bytes, logs, ended) -> reads kept: every read of the "
     "sockets registered with epoll_fd until CLOCK_REALTIME reaches until_ns, appended to "
     "logs[fd] as (read_ns, socket.recvmsg's result); ended gets (fd, errno) for each that ends"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_recorder", NULL, -1, methods};

PyMODINIT_FUNC PyInit__recorder(void) { return PyModule_Create(&module); }
