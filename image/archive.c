#include "image/archive.h"

#include "lib/cleanup.h"
#include "lib/dl.h"

struct archive_lib la;

int archive_lib_load(struct moat_err *err)
{
    static void *handle;
#define ARCHIVE_FN_SYM(fn) DL_SYM(la, fn),
    static const struct dl_sym syms[] = {ARCHIVE_FUNCS(ARCHIVE_FN_SYM)};
#undef ARCHIVE_FN_SYM
    return dl_load(&handle, ARCHIVE_SONAME, syms, ARRAY_SIZE(syms), err);
}
