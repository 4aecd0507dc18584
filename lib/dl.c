#include "lib/dl.h"

#include <dlfcn.h>

int dl_load(void **handle, const char *soname, const struct dl_sym *syms, size_t n,
            struct moat_err *err)
{
    if (*handle)
        return 0;
    /* RTLD_LOCAL: the library's symbols stay out of the global namespace; they
     * are reached only through the table. */
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return moat_err_set(err, 0, "load %s: %s", soname, dlerror());
    for (size_t i = 0; i < n; i++) {
        void *p = dlsym(h, syms[i].name);
        if (!p) {
            for (size_t j = 0; j < i; j++)
                *syms[j].addr = NULL;
            dlclose(h);
            return moat_err_set(err, 0, "load %s: symbol %s missing", soname, syms[i].name);
        }
        *syms[i].addr = p;
    }
    *handle = h;
    return 0;
}
