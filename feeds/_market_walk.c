/* The simulated market's walk, compiled: feeds/market_walk.py's loop, tick for tick.
 *
 * In Python a tick cost ~13 us (six normals, a dozen libm calls, a frozen dataclass built field by
 * field): at 20,000 ticks/s a quarter of the core that a benchmark's server shares with its feed.
 * Here the arithmetic is the same IEEE double operations in the same order (built with
 * -ffp-contract=off, so no fused multiply-add changes a rounding), the random numbers come from the
 * same random() calls, and the Tick is filled in slot by slot: the same ticks, bit for bit
 * (tests/test_market_walk.py checks it), for ~1 us.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>

#define PARETO_ALPHA 1.3
#define MAX_LOTS 1000
#define TICK_FIELDS 7

static const char *const tick_fields[TICK_FIELDS] = {
    "symbol", "seq", "ts", "price", "size", "bid", "ask"};

typedef struct {
    PyObject_HEAD
    PyObject *random;     /* a random.Random's bound random() */
    PyTypeObject *tick_type;
    Py_ssize_t offsets[TICK_FIELDS];
    PyObject *symbols;    /* tuple of str */
    Py_ssize_t n, sector_count;
    int *sector;
    double *cum, *a_m, *a_s, *a_e, *logp, *x, *next_jump, *last_t, *last_mkt, *last_sec;
    double *sec_level, *sec_t;
    long long *seq;
    double total_w, mean_gap_s, kappa, s2, sd_xm, sd_xi, jump_rate, jump_sd, spread_frac;
    double start_ms, x_m, mkt, t;
    double spare;
    int has_spare;
} Walk;

static int
uniform(Walk *w, double *out)
{
    PyObject *value = PyObject_CallNoArgs(w->random);
    if (value == NULL)
        return -1;
    *out = PyFloat_AsDouble(value);
    Py_DECREF(value);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int
gauss(Walk *w, double *out)
{
    if (w->has_spare) {
        w->has_spare = 0;
        *out = w->spare;
        return 0;
    }
    double a, b;
    if (uniform(w, &a) < 0 || uniform(w, &b) < 0)
        return -1;
    double angle = a * (2.0 * M_PI);
    double radius = sqrt(-2.0 * log(1.0 - b));
    w->spare = sin(angle) * radius;
    w->has_spare = 1;
    *out = cos(angle) * radius;
    return 0;
}

static int
next_jump_gap(Walk *w, double *out)
{
    if (!(w->jump_rate > 0)) {
        *out = INFINITY;
        return 0;
    }
    double u;
    if (uniform(w, &u) < 0)
        return -1;
    *out = -log(1.0 - u) / w->jump_rate;
    return 0;
}

/* The model's tuple of floats (or ints) as a new C array of n. */
static double *
doubles(PyObject *model, const char *name, Py_ssize_t n)
{
    PyObject *seq = PyObject_GetAttrString(model, name);
    if (seq == NULL)
        return NULL;
    double *values = NULL;
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != n) {
        PyErr_Format(PyExc_ValueError, "model.%s must be a tuple of %zd numbers", name, n);
        goto done;
    }
    values = PyMem_Calloc(n ? n : 1, sizeof(double));
    if (values == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        values[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(seq, i));
        if (values[i] == -1.0 && PyErr_Occurred()) {
            PyMem_Free(values);
            values = NULL;
            goto done;
        }
    }
done:
    Py_DECREF(seq);
    return values;
}

static int
scalar(PyObject *model, const char *name, double *out)
{
    PyObject *value = PyObject_GetAttrString(model, name);
    if (value == NULL)
        return -1;
    *out = PyFloat_AsDouble(value);
    Py_DECREF(value);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static double *
zeros(Py_ssize_t n)
{
    double *values = PyMem_Calloc(n ? n : 1, sizeof(double));
    if (values == NULL)
        PyErr_NoMemory();
    return values;
}

/* Where each of Tick's fields lives in its object: Tick is a dataclass with __slots__, whose
 * fields are member descriptors of object type. Building it through its frozen __init__ costs 2 us
 * (object.__setattr__ per field); storing into the slots is what that does, minus the lookups. */
static int
tick_offsets(PyTypeObject *type, Py_ssize_t *offsets)
{
    for (int k = 0; k < TICK_FIELDS; k++) {
        PyObject *descr = PyDict_GetItemString(type->tp_dict, tick_fields[k]);
        if (descr == NULL || !PyObject_TypeCheck(descr, &PyMemberDescr_Type)
                || ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX
                || ((PyMemberDescrObject *)descr)->d_member->flags != 0) {
            PyErr_Format(PyExc_TypeError, "the tick type needs a writable slot '%s'",
                         tick_fields[k]);
            return -1;
        }
        offsets[k] = ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    return 0;
}

static void walk_dealloc(Walk *w);

static PyTypeObject WalkType;

PyDoc_STRVAR(walk_doc,
"walk(model, random, start_ms, tick_type) -> Iterator[Tick]\n\n"
"The market's ticks from start_ms on, for ever: feeds.market_walk.walk_in_python, compiled.\n"
"model is a feeds.market_walk.Model, random a random.Random's random method.");

static PyObject *
walk_new(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "walk(model, random, start_ms, tick_type)");
        return NULL;
    }
    PyObject *model = args[0];
    if (!PyCallable_Check(args[1]) || !PyType_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "random must be callable and tick_type a type");
        return NULL;
    }
    double start_ms = PyFloat_AsDouble(args[2]);
    if (start_ms == -1.0 && PyErr_Occurred())
        return NULL;
    Walk *w = PyObject_New(Walk, &WalkType);
    if (w == NULL)
        return NULL;
    /* Everything dealloc frees starts NULL, so a failure below can simply drop w. */
    memset((char *)w + sizeof(PyObject), 0, sizeof(Walk) - sizeof(PyObject));
    Py_INCREF(args[1]);
    w->random = args[1];
    Py_INCREF(args[3]);
    w->tick_type = (PyTypeObject *)args[3];
    w->start_ms = start_ms;
    if (tick_offsets(w->tick_type, w->offsets) < 0)
        goto fail;
    w->symbols = PyObject_GetAttrString(model, "symbols");
    if (w->symbols == NULL)
        goto fail;
    if (!PyTuple_Check(w->symbols) || PyTuple_GET_SIZE(w->symbols) < 1) {
        PyErr_SetString(PyExc_ValueError, "model.symbols must be a non-empty tuple");
        goto fail;
    }
    Py_ssize_t n = w->n = PyTuple_GET_SIZE(w->symbols);
    double sector_count;
    if (scalar(model, "sector_count", &sector_count) < 0)
        goto fail;
    w->sector_count = (Py_ssize_t)sector_count;
    double *sectors = doubles(model, "sectors", n);
    if (sectors == NULL)
        goto fail;
    w->sector = PyMem_Calloc(n, sizeof(int));
    if (w->sector == NULL) {
        PyMem_Free(sectors);
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        w->sector[i] = (int)sectors[i];
        if (w->sector[i] < 0 || w->sector[i] >= w->sector_count) {
            PyMem_Free(sectors);
            PyErr_SetString(PyExc_ValueError, "model.sectors must be in range(sector_count)");
            goto fail;
        }
    }
    PyMem_Free(sectors);
    if ((w->cum = doubles(model, "cumulative_activity", n)) == NULL
            || (w->a_m = doubles(model, "market_loading", n)) == NULL
            || (w->a_s = doubles(model, "sector_loading", n)) == NULL
            || (w->a_e = doubles(model, "own_loading", n)) == NULL
            || (w->logp = doubles(model, "log_prices", n)) == NULL
            || (w->x = zeros(n)) == NULL || (w->next_jump = zeros(n)) == NULL
            || (w->last_t = zeros(n)) == NULL || (w->last_mkt = zeros(n)) == NULL
            || (w->last_sec = zeros(n)) == NULL
            || (w->sec_level = zeros(w->sector_count)) == NULL
            || (w->sec_t = zeros(w->sector_count)) == NULL)
        goto fail;
    w->seq = PyMem_Calloc(n, sizeof(long long));
    if (w->seq == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (scalar(model, "mean_gap_s", &w->mean_gap_s) < 0
            || scalar(model, "kappa", &w->kappa) < 0
            || scalar(model, "vol_variance", &w->s2) < 0
            || scalar(model, "sd_market_vol", &w->sd_xm) < 0
            || scalar(model, "sd_stock_vol", &w->sd_xi) < 0
            || scalar(model, "jump_rate", &w->jump_rate) < 0
            || scalar(model, "jump_sd", &w->jump_sd) < 0
            || scalar(model, "half_spread", &w->spread_frac) < 0)
        goto fail;
    w->total_w = w->cum[n - 1];
    /* The starting state, in walk_in_python's order of random numbers. */
    for (Py_ssize_t i = 0; i < n; i++) {
        double g;
        if (gauss(w, &g) < 0)
            goto fail;
        w->x[i] = w->sd_xi * g;
    }
    double g;
    if (gauss(w, &g) < 0)
        goto fail;
    w->x_m = w->sd_xm * g;
    for (Py_ssize_t i = 0; i < n; i++)
        if (next_jump_gap(w, &w->next_jump[i]) < 0)
            goto fail;
    return (PyObject *)w;
fail:
    Py_DECREF(w);
    return NULL;
}

static PyObject *
make_tick(Walk *w, Py_ssize_t i, double ts, long long price, long long size, long long bid,
          long long ask)
{
    PyObject *values[TICK_FIELDS];
    values[0] = PyTuple_GET_ITEM(w->symbols, i);
    Py_INCREF(values[0]);
    values[1] = PyLong_FromLongLong(w->seq[i]);
    values[2] = PyFloat_FromDouble(ts);
    values[3] = PyFloat_FromDouble((double)price / 100.0);
    values[4] = PyLong_FromLongLong(size);
    values[5] = PyFloat_FromDouble((double)bid / 100.0);
    values[6] = PyFloat_FromDouble((double)ask / 100.0);
    PyObject *tick = NULL;
    for (int k = 0; k < TICK_FIELDS; k++)
        if (values[k] == NULL)
            goto fail;
    tick = w->tick_type->tp_alloc(w->tick_type, 0);
    if (tick == NULL)
        goto fail;
    for (int k = 0; k < TICK_FIELDS; k++)
        *(PyObject **)((char *)tick + w->offsets[k]) = values[k];  /* steals the reference */
    return tick;
fail:
    for (int k = 0; k < TICK_FIELDS; k++)
        Py_XDECREF(values[k]);
    return NULL;
}

static Py_ssize_t
pick_stock(const Walk *w, double target)
{
    /* bisect_right over the running sums */
    Py_ssize_t lo = 0, hi = w->n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (target < w->cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo > w->n - 1 ? w->n - 1 : lo;
}

#define DRAW(call) do { if ((call) < 0) return NULL; } while (0)

static PyObject *
walk_next(Walk *w)
{
    double u, g;
    DRAW(uniform(w, &u));
    double dt = -log(1.0 - u) * w->mean_gap_s;
    double t = w->t = w->t + dt;
    DRAW(uniform(w, &u));
    Py_ssize_t i = pick_stock(w, u * w->total_w);
    DRAW(gauss(w, &g));
    w->mkt += sqrt(dt) * g;
    double decay = exp(-w->kappa * dt);
    DRAW(gauss(w, &g));
    w->x_m = w->x_m * decay + w->sd_xm * sqrt(1.0 - decay * decay) * g;
    int k = w->sector[i];
    DRAW(gauss(w, &g));
    w->sec_level[k] += sqrt(t - w->sec_t[k]) * g;
    w->sec_t[k] = t;

    double dt_i = t - w->last_t[i];
    decay = exp(-w->kappa * dt_i);
    DRAW(gauss(w, &g));
    double xi = w->x[i] = w->x[i] * decay + w->sd_xi * sqrt(1.0 - decay * decay) * g;
    double scale = exp(w->x_m + xi - w->s2);
    DRAW(gauss(w, &g));
    double r = scale * (w->a_m[i] * (w->mkt - w->last_mkt[i])
                        + w->a_s[i] * (w->sec_level[k] - w->last_sec[i])
                        + w->a_e[i] * sqrt(dt_i) * g);
    while (w->next_jump[i] <= t) {
        DRAW(gauss(w, &g));
        r += w->jump_sd * g;
        double gap;
        DRAW(next_jump_gap(w, &gap));
        w->next_jump[i] += gap;
    }
    w->last_t[i] = t;
    w->last_mkt[i] = w->mkt;
    w->last_sec[i] = w->sec_level[k];
    double lp = w->logp[i] = w->logp[i] + r;

    double mid_c = exp(lp) * 100.0;
    DRAW(uniform(w, &u));
    long long spread = (long long)(mid_c * w->spread_frac * pow(4.0, u) + 0.5);
    if (spread < 1)
        spread = 1;
    long long bid = (long long)floor(mid_c - 0.5 * (double)spread + 0.5);
    if (bid < 1)
        bid = 1;
    long long ask = bid + spread;
    long long price;
    DRAW(uniform(w, &u));
    if (u < 0.45)
        price = bid;
    else if (u < 0.9)
        price = ask;
    else if (spread > 1)
        price = bid + 1 + (long long)((u - 0.9) * 10.0 * (double)(spread - 1));
    else
        price = u < 0.95 ? bid : ask;
    DRAW(uniform(w, &u));
    long long lots = (long long)pow(1.0 - u, -1.0 / PARETO_ALPHA);
    w->seq[i] += 1;
    double ts = floor((w->start_ms + t * 1000.0) * 1000.0 + 0.5) / 1000.0;
    return make_tick(w, i, ts, price, 100 * (lots < MAX_LOTS ? lots : MAX_LOTS), bid, ask);
}

static void
walk_dealloc(Walk *w)
{
    Py_XDECREF(w->random);
    Py_XDECREF(w->tick_type);
    Py_XDECREF(w->symbols);
    double *arrays[] = {w->cum, w->a_m, w->a_s, w->a_e, w->logp, w->x, w->next_jump, w->last_t,
                        w->last_mkt, w->last_sec, w->sec_level, w->sec_t};
    for (size_t k = 0; k < sizeof(arrays) / sizeof(arrays[0]); k++)
        PyMem_Free(arrays[k]);
    PyMem_Free(w->sector);
    PyMem_Free(w->seq);
    PyObject_Free(w);
}

static PyTypeObject WalkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "feeds._market_walk.Walk",
    .tp_basicsize = sizeof(Walk),
    .tp_dealloc = (destructor)walk_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The simulated market's ticks, one per next().",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)walk_next,
};

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk_new, METH_FASTCALL, walk_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_market_walk",
    "The simulated market's walk, compiled (see feeds/market_walk.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__market_walk(void)
{
    if (PyType_Ready(&WalkType) < 0)
        return NULL;
    return PyModule_Create(&module);
}
