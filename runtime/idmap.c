/* The sandbox's user namespace maps. Container 5000 (moatuser) always stands for
 * the workspace owner; with /etc/subuid ranges the rest of 0..65535 maps to the
 * subordinate range through the setuid helpers newuidmap/newgidmap. */
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "runtime/internal.h"

#define IDMAP_SPAN 65536u /* container ids 0..65535 */

/* Find the first NAME-or-ID:start:count entry of FILE; 1 when found. */
static int subid_lookup(const char *file, const char *name, unsigned long id, uint32_t *start,
                        uint32_t *count)
{
    _cleanup_fclose_ FILE *f = fopen(file, "re");
    char line[512];

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        char *save = NULL;
        char *who = strtok_r(line, ":", &save);
        char *s = strtok_r(NULL, ":", &save);
        char *c = strtok_r(NULL, ":\n", &save);
        char *end;
        if (!who || !s || !c)
            continue;
        unsigned long id_in_file = strtoul(who, &end, 10);
        bool match = (name && strcmp(who, name) == 0) || (*end == '\0' && id_in_file == id);
        if (!match)
            continue;
        unsigned long vs = strtoul(s, NULL, 10), vc = strtoul(c, NULL, 10);
        if (vc == 0 || vs > UINT32_MAX || vc > UINT32_MAX)
            continue;
        *start = (uint32_t)vs;
        *count = (uint32_t)vc;
        return 1;
    }
    return 0;
}

static bool find_helper(const char *name, char *out, size_t len)
{
    static const char *const dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin"};

    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(out, len, "%s/%s", dirs[i], name);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

/* 5000 -> HOST, and around it as much of 0..65535 as the subordinate range holds. */
static int fill_ranges(struct idmap_range *r, uint32_t host, uint32_t sub_start, uint32_t sub_count)
{
    int n = 0;
    uint32_t below = sub_count < RT_SANDBOX_UID ? sub_count : RT_SANDBOX_UID;
    uint32_t rest = sub_count - below;
    uint32_t above_max = IDMAP_SPAN - RT_SANDBOX_UID - 1;

    r[n++] = (struct idmap_range){RT_SANDBOX_UID, host, 1};
    if (sub_count == 0)
        return n;
    r[n++] = (struct idmap_range){0, sub_start, below};
    if (rest > 0)
        r[n++] = (struct idmap_range){RT_SANDBOX_UID + 1, sub_start + below,
                                      rest < above_max ? rest : above_max};
    return n;
}

int idmap_plan(uid_t host_uid, gid_t host_gid, struct idmap_plan *plan, struct moat_err *err)
{
    struct passwd *pw = getpwuid(geteuid());
    uint32_t us = 0, uc = 0, gs = 0, gc = 0;
    bool privileged = geteuid() == 0;

    memset(plan, 0, sizeof(*plan));
    /* Never hand the sandbox host root: a uid-0 process needs no capability to
     * open root-owned files by their owner bits. */
    if (host_uid == 0 || host_gid == 0)
        return moat_err_set(err, EPERM, "id map: refusing to map the sandbox user to host root");
    if (!privileged && (host_uid != geteuid() || host_gid != getegid()))
        return moat_err_set(err, EPERM, "id map: uid %u/gid %u is not the caller's own",
                            (unsigned)host_uid, (unsigned)host_gid);

    bool have_sub = subid_lookup("/etc/subuid", pw ? pw->pw_name : NULL, geteuid(), &us, &uc) &&
                    subid_lookup("/etc/subgid", pw ? pw->pw_name : NULL, geteuid(), &gs, &gc);
    if (have_sub && !privileged) {
        plan->use_helpers = find_helper("newuidmap", plan->newuidmap, sizeof(plan->newuidmap)) &&
                            find_helper("newgidmap", plan->newgidmap, sizeof(plan->newgidmap));
        if (!plan->use_helpers) {
            log_info("/etc/subuid has a range for you but newuidmap/newgidmap are missing "
                     "(Debian package uidmap): using a single-id mapping");
            have_sub = false;
        }
    }
    if (!have_sub)
        us = uc = gs = gc = 0;
    plan->n_uid = fill_ranges(plan->uid, host_uid, us, uc);
    plan->n_gid = fill_ranges(plan->gid, host_gid, gs, gc);
    /* An unprivileged writer of gid_map must first give up setgroups(2), or the
     * sandbox could drop a group that a host ACL uses to deny it. */
    plan->deny_setgroups = !privileged && !plan->use_helpers;
    log_debug("id map: %d -> %u, %s", RT_SANDBOX_UID, (unsigned)host_uid,
              plan->n_uid > 1 ? (plan->use_helpers ? "subordinate ids via newuidmap/newgidmap"
                                                   : "subordinate ids written directly")
                              : "nothing else mapped");
    return 0;
}

int idmap_add_gid(struct idmap_plan *plan, gid_t inside, gid_t outside, struct moat_err *err)
{
    if (!outside)
        return 0;
    if (geteuid() != 0 || plan->use_helpers)
        return moat_err_set(err, EPERM, "id map: only root maps an extra group (%u)",
                            (unsigned)outside);
    if (plan->n_gid >= IDMAP_MAX_RANGES)
        return moat_err_set(err, E2BIG, "id map: too many ranges");
    for (int i = 0; i < plan->n_gid; i++)
        if (outside >= plan->gid[i].outside && outside - plan->gid[i].outside < plan->gid[i].count)
            return moat_err_set(err, EEXIST, "id map: host group %u is mapped already",
                                (unsigned)outside);
    plan->gid[plan->n_gid++] = (struct idmap_range){inside, outside, 1};
    return 0;
}

static int format_map(const struct idmap_range *r, int n, char *buf, size_t len)
{
    size_t off = 0;

    for (int i = 0; i < n; i++) {
        int k = snprintf(buf + off, len - off, "%u %u %u\n", r[i].inside, r[i].outside, r[i].count);
        if (k < 0 || (size_t)k >= len - off)
            return -1;
        off += (size_t)k;
    }
    return (int)off;
}

static int write_proc_file(pid_t pid, const char *file, const char *data, struct moat_err *err)
{
    char path[64];
    _cleanup_close_ int fd = -1;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write_all(fd, data, strlen(data)) < 0)
        return moat_err_sys(err, "write %s", path);
    return 0;
}

/* Start newuidmap/newgidmap PID inside outside count ...; returns its pid. */
static pid_t start_helper(const char *helper, pid_t pid, const struct idmap_range *r, int n,
                          struct moat_err *err)
{
    char args[1 + 3 * IDMAP_MAX_RANGES][16];
    char *argv[2 + 3 * IDMAP_MAX_RANGES + 1];
    int k = 0;

    argv[k++] = (char *)helper;
    snprintf(args[0], sizeof(args[0]), "%d", (int)pid);
    argv[k++] = args[0];
    for (int i = 0; i < n; i++) {
        uint32_t v[3] = {r[i].inside, r[i].outside, r[i].count};
        for (int j = 0; j < 3; j++) {
            snprintf(args[1 + 3 * i + j], sizeof(args[0]), "%u", v[j]);
            argv[k++] = args[1 + 3 * i + j];
        }
    }
    argv[k] = NULL;
    pid_t child = fork();
    if (child < 0)
        return moat_err_sys(err, "fork %s", helper);
    if (child == 0) {
        execv(helper, argv);
        _exit(127);
    }
    return child;
}

static int finish_helper(const char *helper, pid_t child, pid_t pid, struct moat_err *err)
{
    int status;

    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return moat_err_sys(err, "wait %s", helper);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return moat_err_set(err, 0,
                            "%s %d failed (exit status %d); check /etc/subuid and /etc/subgid",
                            helper, (int)pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

/* Both setuid helpers at once: each costs an execve of a setuid binary. */
static int run_helpers(const struct idmap_plan *plan, pid_t pid, struct moat_err *err)
{
    pid_t g = start_helper(plan->newgidmap, pid, plan->gid, plan->n_gid, err);
    pid_t u = g < 0 ? -1 : start_helper(plan->newuidmap, pid, plan->uid, plan->n_uid, err);
    int r = 0;

    if (g >= 0 && finish_helper(plan->newgidmap, g, pid, err) < 0)
        r = -1;
    if (u >= 0 && finish_helper(plan->newuidmap, u, pid, err) < 0)
        r = -1;
    return (g < 0 || u < 0) ? -1 : r;
}

int idmap_apply(const struct idmap_plan *plan, pid_t pid, struct moat_err *err)
{
    char map[256];

    if (plan->use_helpers)
        return run_helpers(plan, pid, err);
    if (plan->deny_setgroups && write_proc_file(pid, "setgroups", "deny", err) < 0)
        return -1;
    if (format_map(plan->gid, plan->n_gid, map, sizeof(map)) < 0 ||
        write_proc_file(pid, "gid_map", map, err) < 0)
        return -1;
    if (format_map(plan->uid, plan->n_uid, map, sizeof(map)) < 0 ||
        write_proc_file(pid, "uid_map", map, err) < 0)
        return -1;
    return 0;
}
