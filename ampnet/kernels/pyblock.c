/* One block from Python to a bound native kernel without ctypes: a CPython extension
 * type, ``Block(run, binding, x, y, owner)``, whose ``process(block, out)`` copies the
 * caller's float32 samples into row 0 of ``x``, runs the kernel (GIL released) and
 * copies ``y`` into ``out``. A ctypes call converts its arguments and builds a call frame
 * each time (about 1 microsecond on a slow core, more than a 32-sample LSTM block's
 * work); this costs a few hundred nanoseconds. It returns None, touching nothing, for
 * anything it does not handle (another dtype, a strided block, too long, a short
 * ``out``), and the caller takes its Python path. Built beside amp.c when the Python
 * headers are there; without them the Streamer keeps the ctypes call. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef void (*RunBlock)(void *binding, int n);

typedef struct {
    PyObject_HEAD
    RunBlock run;
    void *binding;
    Py_buffer x, y;     /* held for the object's life: the kernel reads and writes them */
    Py_ssize_t max_block;
    float gain;
    PyObject *owner;    /* keeps the binding alive (it is freed when the owner goes) */
} Block;

static int float_rows(Py_buffer *view, PyObject *array, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(array, view, flags) < 0) return -1;
    if (view->itemsize != 4 || !view->format || strcmp(view->format, "f") != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be C-contiguous float32", what);
        return -1;
    }
    return 0;
}

static int Block_init(Block *self, PyObject *args, PyObject *kwds) {
    unsigned long long run, binding;
    PyObject *x, *y, *owner;
    Py_ssize_t max_block;
    float gain = 1.0f;
    static char *names[] = {"run", "binding", "x", "y", "max_block", "owner", "gain", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKOOnO|f", names, &run, &binding, &x, &y,
                                     &max_block, &owner, &gain))
        return -1;
    if (!run || !binding || max_block <= 0) {
        PyErr_SetString(PyExc_ValueError, "a kernel, a binding and a positive max_block are needed");
        return -1;
    }
    if (self->owner) {
        PyErr_SetString(PyExc_TypeError, "a Block is initialised once");
        return -1;
    }
    if (float_rows(&self->x, x, 1, "x") < 0) return -1;
    if (float_rows(&self->y, y, 1, "y") < 0) {
        PyBuffer_Release(&self->x);
        return -1;
    }
    if (self->x.len < max_block * 4 || self->y.len < max_block * 4) {
        PyBuffer_Release(&self->x);
        PyBuffer_Release(&self->y);
        PyErr_SetString(PyExc_ValueError, "x's first row and y must hold max_block samples");
        return -1;
    }
    self->run = (RunBlock)(uintptr_t)run;
    self->binding = (void *)(uintptr_t)binding;
    self->max_block = max_block;
    self->gain = gain;
    Py_INCREF(owner);
    self->owner = owner;
    return 0;
}

static void Block_dealloc(Block *self) {
    if (self->owner) {
        PyBuffer_Release(&self->x);
        PyBuffer_Release(&self->y);
        Py_CLEAR(self->owner);
    }
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* process(block, out) -> out, or None when the caller must take its own path. */
static PyObject *Block_process(Block *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "process(block, out)");
        return NULL;
    }
    if (!self->owner) {
        PyErr_SetString(PyExc_TypeError, "an uninitialised Block");
        return NULL;
    }
    Py_buffer in, out;
    if (PyObject_GetBuffer(args[0], &in, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_ssize_t n = in.len / 4;
    if (in.itemsize != 4 || strcmp(in.format ? in.format : "B", "f") != 0 || in.ndim != 1 ||
        n <= 0 || n > self->max_block) {
        PyBuffer_Release(&in);
        Py_RETURN_NONE;
    }
    if (PyObject_GetBuffer(args[1], &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        PyBuffer_Release(&in);
        Py_RETURN_NONE;
    }
    if (out.itemsize != 4 || strcmp(out.format ? out.format : "B", "f") != 0 || out.ndim != 1 ||
        out.len < n * 4) {
        PyBuffer_Release(&in);
        PyBuffer_Release(&out);
        Py_RETURN_NONE;
    }
    float *x = (float *)self->x.buf, *y = (float *)self->y.buf;
    const float *src = (const float *)in.buf;
    float g = self->gain;
    Py_BEGIN_ALLOW_THREADS
    if (g == 1.0f)
        memcpy(x, src, (size_t)n * 4);
    else
        for (Py_ssize_t i = 0; i < n; i++) x[i] = src[i] * g;
    self->run(self->binding, (int)n);
    memmove(out.buf, y, (size_t)n * 4);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    Py_INCREF(args[1]);
    return args[1];
}

static PyMethodDef Block_methods[] = {
    {"process", (PyCFunction)(void (*)(void))Block_process, METH_FASTCALL,
     "process(block, out) -> out: one block through the kernel, or None if not handled"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Block_slots[] = {
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, (void *)Block_init},
    {Py_tp_dealloc, (void *)Block_dealloc},
    {Py_tp_methods, Block_methods},
    {Py_tp_doc, "Block(run, binding, x, y, max_block, owner, gain=1.0)"},
    {0, NULL},
};

static PyType_Spec Block_spec = {
    "ampnet_pyblock.Block", sizeof(Block), 0, Py_TPFLAGS_DEFAULT, Block_slots,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ampnet_pyblock", NULL, -1, NULL};

PyMODINIT_FUNC PyInit_ampnet_pyblock(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    PyObject *type = PyType_FromSpec(&Block_spec);
    if (!type || PyModule_AddObject(m, "Block", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
