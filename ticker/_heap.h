/* A binary min-heap of run heads, keyed by the place in the feed of each run's next tick: shared
 * by the two merges into feed order (ticker/_order.c, ticker/_frames.c). */
#ifndef TICKER_HEAP_H
#define TICKER_HEAP_H

#include <Python.h>

typedef struct {
    long long key;      /* the place of the run's next tick */
    Py_ssize_t run;
    Py_ssize_t next;    /* index of that tick in the run (ticker/_order.c) */
} Head;

static inline void
sift_down(Head *heap, Py_ssize_t size, Py_ssize_t at)
{
    Head moving = heap[at];
    for (;;) {
        Py_ssize_t child = 2 * at + 1;
        if (child >= size) {
            break;
        }
        if (child + 1 < size && heap[child + 1].key < heap[child].key) {
            child++;
        }
        if (heap[child].key >= moving.key) {
            break;
        }
        heap[at] = heap[child];
        at = child;
    }
    heap[at] = moving;
}

#endif
