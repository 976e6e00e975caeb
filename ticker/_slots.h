/* Reading and writing an object's __slots__ attribute at its offset, for the fan-out's compiled
 * pieces (ticker/_frames.c, ticker/_wake.c).
 *
 * perf on the pinned server at 2M ticks/s delivered (2026-12-04): PyObject_GetAttr and what it
 * calls (the type's MRO lookup, PyMember_GetOne) took ~11 % of the core, nearly all of it the
 * drain reading cursors and histories. A slot of a plain class is a pointer at a fixed offset in
 * the object; once a Slot has seen the type it reads that pointer. Anything else (another type, a
 * property, a class with its own __getattribute__ or __setattr__, an unset slot) goes through
 * PyObject_GetAttr / PyObject_SetAttr as before, so behaviour, errors included, is Python's.
 */
#ifndef TICKER_SLOTS_H
#define TICKER_SLOTS_H

#include <Python.h>
#include <structmember.h>

typedef struct {
    const char *text;
    PyObject *name;       /* interned */
    PyTypeObject *type;   /* owned: the type the offset is for, NULL until learned */
    Py_ssize_t offset;
    int settable;         /* the type sets attributes the generic way (no __setattr__) */
} Slot;

static inline int
slot_init(Slot *slot)
{
    if (slot->name == NULL) {
        slot->name = PyUnicode_InternFromString(slot->text);
    }
    return slot->name == NULL ? -1 : 0;
}

/* Learns where ``type`` keeps the attribute, if it is a plain object slot. */
static inline void
slot_learn(Slot *slot, PyTypeObject *type)
{
    if (type->tp_getattro != PyObject_GenericGetAttr) {
        return;
    }
    /* The attribute of the class is the descriptor itself, as Cls.name is in Python. */
    PyObject *descr = PyObject_GetAttr((PyObject *)type, slot->name);
    if (descr == NULL) {
        PyErr_Clear();
        return;
    }
    if (PyObject_TypeCheck(descr, &PyMemberDescr_Type)
            && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX
            && !(((PyMemberDescrObject *)descr)->d_member->flags & READONLY)
            && PyType_IsSubtype(type, ((PyMemberDescrObject *)descr)->d_common.d_type)) {
        Py_INCREF(type);
        Py_XSETREF(slot->type, type);
        slot->offset = ((PyMemberDescrObject *)descr)->d_member->offset;
        slot->settable = type->tp_setattro == PyObject_GenericSetAttr;
    }
    Py_DECREF(descr);
}

/* A new reference to object.<slot>, or NULL with an exception set. */
static inline PyObject *
slot_get(Slot *slot, PyObject *object)
{
    PyTypeObject *type = Py_TYPE(object);
    if (type == slot->type) {
        PyObject *value = *(PyObject **)((char *)object + slot->offset);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    } else {
        slot_learn(slot, type);
    }
    return PyObject_GetAttr(object, slot->name);
}

/* object.<slot> as a C long long; -1 with an exception set on error. */
static inline long long
slot_long(Slot *slot, PyObject *object)
{
    PyObject *value = slot_get(slot, object);
    if (value == NULL) {
        return -1;
    }
    long long result = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return result;
}

/* object.<slot> = value; 0, or -1 with an exception set. */
static inline int
slot_set(Slot *slot, PyObject *object, PyObject *value)
{
    PyTypeObject *type = Py_TYPE(object);
    if (type != slot->type) {
        slot_learn(slot, type);
    }
    if (type == slot->type && slot->settable) {
        PyObject **at = (PyObject **)((char *)object + slot->offset);
        Py_INCREF(value);
        Py_XSETREF(*at, value);
        return 0;
    }
    return PyObject_SetAttr(object, slot->name, value);
}

#endif
