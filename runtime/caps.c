/* Capabilities: the agent keeps none, in any set. */
#include <sys/capability.h>
#include <sys/prctl.h>

#include "runtime/internal.h"

int caps_drop_all(struct moat_err *err)
{
    cap_t none;

    /* Bounding set first (it needs CAP_SETPCAP, which the steps below remove):
     * no execve can ever regain a capability, file capabilities included. */
    for (int c = 0; prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
            return moat_err_sys(err, "drop capability %d from the bounding set", (int)c);
    /* Ambient: nothing carried across execve. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return moat_err_sys(err, "clear ambient capabilities");
    /* Effective, permitted, inheritable: all empty. */
    none = cap_init();
    if (!none)
        return moat_err_sys(err, "cap_init");
    if (cap_set_proc(none) < 0) {
        cap_free(none);
        return moat_err_sys(err, "clear capabilities");
    }
    cap_free(none);
    /* no_new_privs: setuid/setgid bits and file capabilities grant nothing, and
     * it lets an unprivileged process install the seccomp filter. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return moat_err_sys(err, "set no_new_privs");
    return 0;
}
