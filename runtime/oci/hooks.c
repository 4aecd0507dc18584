/* OCI hooks the runtime itself runs (prestart, createRuntime, poststart,
 * poststop): each with the container's state JSON on stdin, its own args and
 * env, and killed when its timeout passes (runtime/hook.c). */
#include "runtime/internal.h"
#include "runtime/oci/oci.h"

int oci_hooks_run(const struct oci_spec *spec, enum oci_hook_kind kind, const char *state_json,
                  struct moat_err *err)
{
    for (size_t i = 0; i < spec->hooks.n[kind]; i++) {
        const struct oci_hook *h = &spec->hooks.list[kind][i];
        struct rt_hook r = {h->path, (char *const *)h->args, (char *const *)h->env, h->timeout};
        if (rt_hook_run(&r, oci_hook_name(kind), i, state_json, err) < 0)
            return -1;
    }
    return 0;
}
