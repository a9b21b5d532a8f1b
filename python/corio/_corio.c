/* corio._corio: the C half of corio's asyncio event loop. */
#include "_corio.h"

int cpy_loop_type_init(PyObject *module);

static struct PyModuleDef mod = {
    PyModuleDef_HEAD_INIT,
    .m_name = "corio._corio",
    .m_doc = "The C core of corio's asyncio event loop.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__corio(void);
PyMODINIT_FUNC PyInit__corio(void)
{
    PyObject *m = PyModule_Create(&mod);
    if (!m)
        return NULL;
    if (cpy_handles_init(m) < 0 || cpy_loop_type_init(m) < 0 || cpy_transport_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
