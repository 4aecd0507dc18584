/* BUNDLE/config.json -> struct rt_config: the engine's terms for what the spec
 * says. Refusals name the field; what moat cannot do is refused, not skipped. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "runtime/internal.h"
#include "runtime/oci/oci.h"

/* Mount options that are MOUNT_ATTR_* flags; the "clear" ones reset a flag. */
static const struct {
    const char *name;
    uint64_t set, clear;
} attr_opts[] = {
    {"ro", MOUNT_ATTR_RDONLY, 0},
    {"rw", 0, MOUNT_ATTR_RDONLY},
    {"nosuid", MOUNT_ATTR_NOSUID, 0},
    {"suid", 0, MOUNT_ATTR_NOSUID},
    {"nodev", MOUNT_ATTR_NODEV, 0},
    {"dev", 0, MOUNT_ATTR_NODEV},
    {"noexec", MOUNT_ATTR_NOEXEC, 0},
    {"exec", 0, MOUNT_ATTR_NOEXEC},
    {"noatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME},
    {"strictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME},
    {"relatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME},
    {"nodiratime", MOUNT_ATTR_NODIRATIME, 0},
    {"diratime", 0, MOUNT_ATTR_NODIRATIME},
};

static const struct {
    const char *name;
    uint64_t flag;
} prop_opts[] = {
    {"shared", MS_SHARED},         {"rshared", MS_SHARED},         {"slave", MS_SLAVE},
    {"rslave", MS_SLAVE},          {"private", MS_PRIVATE},        {"rprivate", MS_PRIVATE},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE},
};

/* Options with no effect here: defaults, podman's and SELinux's. */
static const char *const ignored_opts[] = {"defaults",    "bind",  "rbind", "tmpcopyup",
                                           "notmpcopyup", "z",     "Z",     "copy",
                                           "nocopy",      "async", "U",     NULL};

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static bool is_bind(const struct oci_mount *m)
{
    if (m->type && strcmp(m->type, "bind") == 0)
        return true;
    for (const char **o = m->options; *o; o++)
        if (strcmp(*o, "bind") == 0 || strcmp(*o, "rbind") == 0)
            return true;
    return false;
}

/* Sort M's options into attributes, propagation and filesystem data. */
static int mount_options(const struct oci_mount *m, size_t i, struct rt_mount *out, char **data,
                         struct moat_err *err)
{
    char buf[4096] = "";
    size_t len = 0;

    for (const char **o = m->options; *o; o++) {
        size_t k;
        bool done = false;
        for (k = 0; k < ARRAY_SIZE(attr_opts) && !done; k++)
            if (strcmp(*o, attr_opts[k].name) == 0) {
                out->attrs = (out->attrs & ~attr_opts[k].clear) | attr_opts[k].set;
                done = true;
            }
        for (k = 0; k < ARRAY_SIZE(prop_opts) && !done; k++)
            if (strcmp(*o, prop_opts[k].name) == 0) {
                out->propagation = prop_opts[k].flag;
                done = true;
            }
        if (done || in_list(*o, ignored_opts))
            continue;
        if (out->kind == RT_MOUNT_BIND)
            return moat_err_set(err, EINVAL,
                                "config.json: mounts[%zu] (%s): option \"%s\" "
                                "is not supported for a bind mount",
                                i, m->destination, *o);
        int n = snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", *o);
        if (n < 0 || (size_t)n >= sizeof(buf) - len)
            return moat_err_set(err, E2BIG, "config.json: mounts[%zu]: options too long", i);
        len += (size_t)n;
    }
    if (len && !(*data = strdup(buf)))
        return moat_err_set(err, ENOMEM, "config.json: mounts[%zu]", i);
    out->data = *data;
    return 0;
}

/* A path of the bundle: absolute as given, else under the bundle directory. */
static int bundle_path(const struct oci_bundle *b, const char *p, char *out, size_t len,
                       struct moat_err *err)
{
    int n = p[0] == '/' ? snprintf(out, len, "%s", p) : snprintf(out, len, "%s/%s", b->bundle, p);

    return n < 0 || (size_t)n >= len ? moat_err_set(err, ENAMETOOLONG, "path %s", p) : 0;
}

static int build_mounts(struct oci_bundle *b, struct moat_err *err)
{
    const struct oci_spec *s = &b->spec;
    char path[PATH_MAX];

    b->mounts = calloc(s->n_mounts + 1, sizeof(*b->mounts));
    b->mount_data = calloc(s->n_mounts + 1, sizeof(char *));
    b->mount_sources = calloc(s->n_mounts + 1, sizeof(char *));
    if (!b->mounts || !b->mount_data || !b->mount_sources)
        return moat_err_set(err, ENOMEM, "config.json: mounts");
    for (size_t i = 0; i < s->n_mounts; i++) {
        const struct oci_mount *m = &s->mounts[i];
        struct rt_mount *r = &b->mounts[i];
        r->target = m->destination;
        if (is_bind(m)) {
            r->kind = RT_MOUNT_BIND;
            if (!m->source || !*m->source)
                return moat_err_set(err, EINVAL,
                                    "config.json: mounts[%zu] (%s): a bind needs "
                                    "a source",
                                    i, m->destination);
            if (bundle_path(b, m->source, path, sizeof(path), err) < 0 ||
                !(b->mount_sources[i] = strdup(path)))
                return moat_err_prefix(err, "config.json: mounts[%zu]", i);
            r->source = b->mount_sources[i];
        } else {
            if (!m->type || !*m->type)
                return moat_err_set(err, EINVAL, "config.json: mounts[%zu] (%s): no type", i,
                                    m->destination);
            r->kind = RT_MOUNT_FS;
            r->fstype = m->type;
            r->source = m->source;
        }
        if (mount_options(m, i, r, &b->mount_data[i], err) < 0)
            return -1;
    }
    b->cfg.mounts = b->mounts;
    b->cfg.n_mounts = s->n_mounts;
    return 0;
}

static int build_namespaces(struct oci_bundle *b, struct moat_err *err)
{
    const struct oci_linux *lx = &b->spec.lx;

    b->join = calloc(lx->n_namespaces + 1, sizeof(*b->join));
    if (!b->join)
        return moat_err_set(err, ENOMEM, "config.json: linux.namespaces");
    for (size_t i = 0; i < lx->n_namespaces; i++) {
        if (lx->namespaces[i].path)
            b->join[b->oci.n_join++] =
                (struct rt_ns_join){lx->namespaces[i].type, lx->namespaces[i].path};
        else
            b->oci.clone_flags |= lx->namespaces[i].type;
    }
    b->oci.join = b->join;
    /* Mounting the root in the host's own mount namespace would change the host. */
    if (!(b->oci.clone_flags & CLONE_NEWNS))
        return moat_err_set(err, EINVAL,
                            "config.json: linux.namespaces: moat-runtime needs a "
                            "new mount namespace (add {\"type\": \"mount\"})");
    bool userns = b->oci.clone_flags & CLONE_NEWUSER;
    for (size_t i = 0; i < b->oci.n_join && !userns; i++)
        userns = b->join[i].type == CLONE_NEWUSER;
    if (geteuid() != 0 && !userns)
        return moat_err_set(err, EPERM,
                            "config.json: linux.namespaces: rootless containers "
                            "need a user namespace (moat-runtime spec --rootless)");
    return 0;
}

static int build_maps(struct oci_bundle *b, struct moat_err *err)
{
    const struct oci_linux *lx = &b->spec.lx;

    b->uid_map = calloc(lx->n_uid_mappings + 1, sizeof(*b->uid_map));
    b->gid_map = calloc(lx->n_gid_mappings + 1, sizeof(*b->gid_map));
    if (!b->uid_map || !b->gid_map)
        return moat_err_set(err, ENOMEM, "config.json: id mappings");
    for (size_t i = 0; i < lx->n_uid_mappings; i++)
        b->uid_map[i] = (struct rt_idmap){lx->uid_mappings[i].container, lx->uid_mappings[i].host,
                                          lx->uid_mappings[i].size};
    for (size_t i = 0; i < lx->n_gid_mappings; i++)
        b->gid_map[i] = (struct rt_idmap){lx->gid_mappings[i].container, lx->gid_mappings[i].host,
                                          lx->gid_mappings[i].size};
    b->oci.uid_map = b->uid_map;
    b->oci.gid_map = b->gid_map;
    b->oci.n_uid_map = lx->n_uid_mappings;
    b->oci.n_gid_map = lx->n_gid_mappings;
    return 0;
}

/* Without AppArmor in the kernel a profile cannot confine anything: a warning.
 * With it, running unconfined would be weaker than asked: refused. */
static int apparmor_check(const struct oci_process *p, struct moat_err *err)
{
    char on = 'N';
    _cleanup_close_ int fd = open("/sys/module/apparmor/parameters/enabled", O_RDONLY | O_CLOEXEC);

    if (fd >= 0 && read(fd, &on, 1) == 1 && on == 'Y')
        return moat_err_set(err, ENOTSUP,
                            "config.json: process.apparmorProfile \"%s\": moat-runtime cannot "
                            "apply AppArmor profiles, and will not run the process unconfined",
                            p->apparmor_profile);
    log_warn("process.apparmorProfile \"%s\" ignored: AppArmor is not enabled in this kernel",
             p->apparmor_profile);
    return 0;
}

static int build_process(struct oci_bundle *b, struct moat_err *err)
{
    if (!b->spec.has_process)
        return moat_err_set(err, EINVAL, "config.json: process: missing");
    return oci_bundle_use_process(b, &b->spec.process, err);
}

/* A pty relayed to our own terminal starts at our terminal's size: resizing it
 * after the process started races with the process's first TIOCGWINSZ. */
void oci_bundle_size_from_caller(struct oci_bundle *b)
{
    struct winsize ws;

    if (!b->cfg.tty || b->oci.console_rows)
        return;
    tty_get_winsize(&ws);
    b->oci.console_rows = ws.ws_row;
    b->oci.console_cols = ws.ws_col;
}

int oci_bundle_use_process(struct oci_bundle *b, const struct oci_process *p, struct moat_err *err)
{
    b->cfg.argv = (char *const *)p->args;
    b->cfg.envp = (char *const *)p->env;
    b->cfg.cwd = p->cwd;
    b->cfg.tty = p->terminal;
    b->oci.console_rows = p->console_height;
    b->oci.console_cols = p->console_width;
    b->oci.uid = p->uid;
    b->oci.gid = p->gid;
    b->oci.groups = p->additional_gids;
    b->oci.n_groups = p->n_additional_gids;
    b->oci.umask = p->has_umask ? p->umask : 022;
    b->oci.cap_bounding = p->caps.bounding;
    b->oci.cap_effective = p->caps.effective;
    b->oci.cap_inheritable = p->caps.inheritable;
    b->oci.cap_permitted = p->caps.permitted;
    b->oci.cap_ambient = p->caps.ambient;
    b->oci.no_new_privs = p->no_new_privileges;
    b->oci.has_oom_score_adj = p->has_oom_score_adj;
    b->oci.oom_score_adj = p->oom_score_adj;
    if (p->apparmor_profile && *p->apparmor_profile && apparmor_check(p, err) < 0)
        return -1;
    free(b->rlimits);
    b->rlimits = calloc(p->n_rlimits + 1, sizeof(*b->rlimits));
    if (!b->rlimits)
        return moat_err_set(err, ENOMEM, "config.json: process.rlimits");
    for (size_t i = 0; i < p->n_rlimits; i++)
        b->rlimits[i] =
            (struct rt_rlimit){p->rlimits[i].resource, p->rlimits[i].soft, p->rlimits[i].hard};
    b->oci.rlimits = b->rlimits;
    b->oci.n_rlimits = p->n_rlimits;
    return 0;
}

static int build_devices(struct oci_bundle *b, struct moat_err *err)
{
    const struct oci_linux *lx = &b->spec.lx;

    b->devices = calloc(lx->n_devices + 1, sizeof(*b->devices));
    b->sysctl = calloc(lx->n_sysctl + 1, sizeof(*b->sysctl));
    if (!b->devices || !b->sysctl)
        return moat_err_set(err, ENOMEM, "config.json: linux");
    for (size_t i = 0; i < lx->n_devices; i++) {
        const struct oci_device *d = &lx->devices[i];
        b->devices[i] = (struct rt_device){d->type,
                                           d->path,
                                           (uint32_t)(d->major < 0 ? 0 : d->major),
                                           (uint32_t)(d->minor < 0 ? 0 : d->minor),
                                           d->has_mode ? d->file_mode : 0666,
                                           d->uid,
                                           d->gid};
    }
    for (size_t i = 0; i < lx->n_sysctl; i++)
        b->sysctl[i] = (struct rt_sysctl){lx->sysctl[i].key, lx->sysctl[i].value};
    b->oci.devices = b->devices;
    b->oci.n_devices = lx->n_devices;
    b->oci.sysctl = b->sysctl;
    b->oci.n_sysctl = lx->n_sysctl;
    return 0;
}

/* The device cgroup's rules: linux.resources.devices in order, the default
 * devices after them (as runc puts them), then mknod of each device in
 * linux.devices: the container's setup makes those nodes from inside its cgroup,
 * and making one grants nothing its rules do not (opening it needs r or w). */
static int build_dev_rules(struct oci_bundle *b, struct moat_err *err)
{
    const struct oci_linux *lx = &b->spec.lx;
    const struct oci_resources *r = &lx->resources;
    size_t nd, n = 0;
    const struct rt_dev_rule *defs = rt_devcg_defaults(&nd);

    if (r->n_dev_rules + nd + lx->n_devices > RT_DEVCG_MAX_RULES)
        return moat_err_set(err, E2BIG,
                            "config.json: linux.resources.devices and linux.devices: more than %d "
                            "device cgroup rules",
                            RT_DEVCG_MAX_RULES);
    b->dev_rules = calloc(r->n_dev_rules + nd + lx->n_devices, sizeof(*b->dev_rules));
    if (!b->dev_rules)
        return moat_err_set(err, ENOMEM, "config.json: linux.resources.devices");
    for (size_t i = 0; i < r->n_dev_rules; i++) {
        const struct oci_dev_rule *d = &r->dev_rules[i];
        unsigned acc = (strchr(d->access, 'r') ? RT_DEV_READ : 0) |
                       (strchr(d->access, 'w') ? RT_DEV_WRITE : 0) |
                       (strchr(d->access, 'm') ? RT_DEV_MKNOD : 0);
        b->dev_rules[n++] = (struct rt_dev_rule){d->type, d->major, d->minor, acc, d->allow};
    }
    for (size_t i = 0; i < nd; i++)
        b->dev_rules[n++] = defs[i];
    /* A fifo ('p') is no device to the cgroup; 'u' (unbuffered) is a character one. */
    for (size_t i = 0; i < lx->n_devices; i++)
        if (lx->devices[i].type != 'p')
            b->dev_rules[n++] =
                (struct rt_dev_rule){lx->devices[i].type == 'b' ? 'b' : 'c', lx->devices[i].major,
                                     lx->devices[i].minor, RT_DEV_MKNOD, true};
    b->oci.dev_rules = b->dev_rules;
    b->oci.n_dev_rules = n;
    return 0;
}

/* linux.cgroupsPath: absolute, or relative to moat-runtime's own cgroup (see
 * rt_oci.cgroup_path); systemd's slice:prefix:name form needs --systemd-cgroup,
 * which moat-runtime refuses, so it is refused here too rather than taken for a
 * directory name. */
static int build_cgroup_path(struct oci_bundle *b, struct moat_err *err)
{
    const char *p = b->spec.lx.cgroups_path;

    if (!p || !*p)
        return 0;
    if (p[0] != '/' && strchr(p, ':'))
        return moat_err_set(err, ENOTSUP,
                            "config.json: linux.cgroupsPath \"%s\": systemd's slice:prefix:name "
                            "form needs --systemd-cgroup, which moat-runtime does not support "
                            "(cgroupfs only: give a path)",
                            p);
    b->oci.cgroup_path = p;
    return 0;
}

/* memory.swap is memory+swap: at least the limit, and meaningless without one;
 * -1 lets swap go unlimited. Absent (or 0), swap never extends the limit. */
static int build_swap(struct oci_bundle *b, struct moat_err *err)
{
    const struct oci_resources *r = &b->spec.lx.resources;

    if (r->has_memory_swap && r->memory_swap == -1 && r->memory_limit > 0)
        b->oci.resources.memory_swap = -1;
    if (r->memory_swap <= 0)
        return 0;
    if (r->memory_limit <= 0)
        return moat_err_set(err, EINVAL,
                            "config.json: linux.resources.memory.swap needs memory.limit");
    if (r->memory_swap < r->memory_limit)
        return moat_err_set(err, EINVAL,
                            "config.json: linux.resources.memory.swap (%" PRId64
                            ") is memory+swap and must be at least memory.limit (%" PRId64 ")",
                            r->memory_swap, r->memory_limit);
    b->oci.resources.memory_swap = r->memory_swap;
    return 0;
}

/* linux.resources and linux.cgroupsPath: what the cgroups get, and where. */
static int build_cgroups(struct oci_bundle *b, struct moat_err *err)
{
    const struct oci_linux *lx = &b->spec.lx;
    const struct oci_resources *r = &lx->resources;
    struct rt_cgroup_extra *x = &b->oci.resources;

    if (build_cgroup_path(b, err) < 0 || build_dev_rules(b, err) < 0)
        return -1;
    if (!lx->has_resources)
        return 0;
    b->cfg.pids_max = r->pids_limit > 0 ? r->pids_limit : 0;
    b->cfg.memory_max = r->memory_limit > 0 ? r->memory_limit : 0;
    /* 1024 shares is every cgroup's default weight: nothing to enforce. */
    b->cfg.cpu.shares = r->cpu_shares > 0 && r->cpu_shares != 1024 ? r->cpu_shares : 0;
    b->cfg.cpu.quota = r->cpu_quota > 0 ? r->cpu_quota : 0;
    b->cfg.cpu.period = b->cfg.cpu.quota && r->cpu_period > 0 ? r->cpu_period : 0;
    x->cpus = r->cpu_cpus;
    x->mems = r->cpu_mems;
    x->rt_runtime = r->cpu_rt_runtime > 0 ? r->cpu_rt_runtime : 0;
    x->rt_period = r->cpu_rt_period > 0 ? r->cpu_rt_period : 0;
    x->memory_reservation = r->memory_reservation > 0 ? r->memory_reservation : 0;
    x->blkio_weight = r->blkio_weight;
    for (size_t i = 0; i < r->n_hugepages && i < RT_CG_MAX_HUGEPAGES; i++) {
        x->hugepages[i].size = r->hugepages[i].page_size;
        x->hugepages[i].limit = r->hugepages[i].limit;
        x->n_hugepages++;
    }
    for (size_t i = 0; i < r->n_ignored; i++)
        log_warn("%s is not enforced by moat-runtime", r->ignored[i]);
    return build_swap(b, err);
}

static int build_seccomp(struct oci_bundle *b, const struct oci_globals *g, struct moat_err *err)
{
    const struct oci_linux *lx = &b->spec.lx;
    char cache[PATH_MAX];

    if (!lx->seccomp_json)
        return 0;
    /* A notify action needs a seccomp agent to answer; without one the call would hang. */
    if (lx->seccomp_notify)
        return moat_err_set(err, ENOTSUP,
                            "config.json: linux.seccomp: SCMP_ACT_NOTIFY is not "
                            "supported (moat-runtime has no seccomp agent)");
    /* A leading dot: no container ID can take the name (oci_check_id). */
    snprintf(cache, sizeof(cache), "%s/.seccomp-cache", g->root);
    if (rt_seccomp_load_profile("config.json: linux.seccomp", lx->seccomp_json, lx->seccomp_len,
                                cache, &b->seccomp, err) < 0)
        return -1;
    b->has_seccomp = true;
    b->cfg.seccomp = &b->seccomp;
    return 0;
}

static int build_linux(struct oci_bundle *b, const struct oci_globals *g, struct moat_err *err)
{
    const struct oci_linux *lx = &b->spec.lx;

    if (build_devices(b, err) < 0)
        return -1;
    b->oci.masked_paths = lx->masked_paths;
    b->oci.readonly_paths = lx->readonly_paths;
    b->oci.rootfs_propagation = lx->rootfs_propagation;
    b->oci.has_personality = lx->has_personality;
    b->oci.personality = lx->personality;
    if (build_cgroups(b, err) < 0)
        return -1;
    return build_seccomp(b, g, err);
}

int oci_spec_load(const char *bundle, struct oci_spec *spec, struct moat_err *err)
{
    _cleanup_close_ int dir = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_free_ char *text = NULL;
    size_t len;

    memset(spec, 0, sizeof(*spec));
    if (dir < 0)
        return moat_err_sys(err, "open bundle %s", bundle);
    if (read_file_at(dir, "config.json", OCI_SPEC_MAX_BYTES, &text, &len, err) < 0)
        return moat_err_prefix(err, "bundle %s", bundle);
    return oci_spec_parse("config.json", text, len, spec, err);
}

/* The hooks of KIND as the engine runs them, into a calloc'd *OUT. */
static int engine_hooks(const struct oci_spec *s, enum oci_hook_kind kind, struct rt_hook **out,
                        size_t *n, struct moat_err *err)
{
    const struct oci_hook *h = s->hooks.list[kind];

    *n = s->hooks.n[kind];
    *out = calloc(*n + 1, sizeof(**out));
    if (!*out)
        return moat_err_set(err, ENOMEM, "config.json: hooks.%s", oci_hook_name(kind));
    for (size_t i = 0; i < *n; i++)
        (*out)[i] = (struct rt_hook){h[i].path, (char *const *)h[i].args, (char *const *)h[i].env,
                                     h[i].timeout};
    return 0;
}

/* startContainer hooks run in the container, by its process (runtime/exec.c);
 * createContainer ones by its setup process before pivot_root (runtime/container.c). */
static int build_hooks(struct oci_bundle *b, struct moat_err *err)
{
    if (engine_hooks(&b->spec, OCI_HOOK_START_CONTAINER, &b->start_hooks, &b->oci.n_start_hooks,
                     err) < 0 ||
        engine_hooks(&b->spec, OCI_HOOK_CREATE_CONTAINER, &b->container_hooks,
                     &b->oci.create_hooks.n_container, err) < 0)
        return -1;
    b->oci.start_hooks = b->start_hooks;
    b->oci.create_hooks.container = b->container_hooks;
    return 0;
}

int oci_bundle_load(const char *bundle, const char *id, const struct oci_globals *g,
                    struct oci_bundle *b, struct moat_err *err)
{
    memset(b, 0, sizeof(*b));
    if (!realpath(bundle, b->bundle))
        return moat_err_sys(err, "bundle %s", bundle);
    if (oci_spec_load(b->bundle, &b->spec, err) < 0)
        return -1;
    b->cfg.oci = &b->oci;
    b->oci.cgroup_name = id;
    b->oci.start_fd = -1;
    if (!b->spec.root_path)
        return moat_err_set(err, EINVAL, "config.json: root: missing");
    char root[PATH_MAX];
    if (bundle_path(b, b->spec.root_path, root, sizeof(root), err) < 0)
        return moat_err_prefix(err, "config.json: root.path");
    /* Canonical: the root is assembled over this very path, and --no-pivot
     * finds it in mountinfo by name. */
    if (!realpath(root, b->root))
        return moat_err_sys(err, "config.json: root.path %s", root);
    b->cfg.root = (struct rt_root){.path = b->root, .readonly = b->spec.root_readonly};
    b->cfg.hostname = b->spec.hostname;
    b->oci.domainname = b->spec.domainname;
    if (build_process(b, err) < 0 || build_namespaces(b, err) < 0 || build_maps(b, err) < 0 ||
        build_mounts(b, err) < 0 || build_linux(b, g, err) < 0 || build_hooks(b, err) < 0)
        return -1;
    return 0;
}

void oci_bundle_free(struct oci_bundle *b)
{
    for (size_t i = 0; b->mount_data && i < b->spec.n_mounts; i++)
        free(b->mount_data[i]);
    for (size_t i = 0; b->mount_sources && i < b->spec.n_mounts; i++)
        free(b->mount_sources[i]);
    free(b->mount_data);
    free(b->mount_sources);
    free(b->mounts);
    free(b->join);
    free(b->uid_map);
    free(b->gid_map);
    free(b->rlimits);
    free(b->devices);
    free(b->dev_rules);
    free(b->sysctl);
    free(b->start_hooks);
    free(b->container_hooks);
    if (b->has_seccomp)
        rt_seccomp_free(&b->seccomp);
    oci_spec_free(&b->spec);
    memset(b, 0, sizeof(*b));
}
