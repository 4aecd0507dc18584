/* Heavy libraries loaded on demand. Linking libarchive or OpenSSL into moat
 * would cost every `moat run` 1-2.5 ms of loading and relocation (measured:
 * an empty program links in 1.1 ms, 2.3 ms with libssl, 3.6 ms with
 * libarchive), so the code that needs them resolves its functions through a
 * table when it first runs. */
#ifndef MOAT_LIB_DL_H
#define MOAT_LIB_DL_H

#include <stddef.h>

#include "lib/err.h"

/* One function to resolve: its symbol name and where to store its address. */
struct dl_sym {
    const char *name;
    void **addr;
};

#define DL_SYM(table, fn)                                                                          \
    {                                                                                              \
#fn, (void **)&(table).fn                                                                  \
    }

/* Open the library named SONAME (the versioned name, e.g. "libarchive.so.13",
 * so a -dev package is not needed at run time) and resolve every symbol in
 * SYMS. Idempotent per *HANDLE: a loaded library returns 0 at once. Fails
 * naming the library or the first missing symbol; nothing half-resolved is
 * kept. */
int dl_load(void **handle, const char *soname, const struct dl_sym *syms, size_t n,
            struct moat_err *err);

#endif
