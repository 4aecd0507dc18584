/* moat.yaml under moat run's flags: a scalar the flags left unset comes from the
 * file; lists are the file's entries, then the flags' (so -e KEY=... wins). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/run.h"
#include "lib/cleanup.h"
#include "lib/log.h"

/* ARR (N entries of SIZE bytes, room for N) with the K entries of FRONT before them. */
static int prepend(void **arr, size_t *n, size_t size, const void *front, size_t k,
                   struct moat_err *err)
{
    char *v = calloc(*n + k + 1, size);

    if (!v)
        return moat_err_sys(err, "moat.yaml");
    if (k)
        memcpy(v, front, k * size);
    if (*n)
        memcpy(v + k * size, *arr, *n * size);
    free(*arr);
    *arr = v;
    *n += k;
    return 0;
}

/* A file mount's source or CA file: ~/ is the caller's home, a relative path is the
 * workspace's (where moat.yaml is), never the directory moat happens to run from. */
static char *file_path(const char *src, const char *workspace)
{
    char path[PATH_MAX * 2];
    const char *home = getenv("HOME");

    if (strncmp(src, "~/", 2) == 0 && home)
        snprintf(path, sizeof(path), "%s/%s", home, src + 2);
    else if (src[0] == '/')
        snprintf(path, sizeof(path), "%s", src);
    else
        snprintf(path, sizeof(path), "%s/%s", workspace, src);
    return realpath(path, NULL);
}

static int file_mounts(struct run_opts *o, const char *workspace, struct moat_err *err)
{
    const struct config *c = &o->file;
    size_t k = 0, total = 0;

    for (size_t i = 0; i < c->n_mounts; i++)
        total += 1 + c->mounts[i].exclude.n;
    _cleanup_free_ struct user_mount *v = calloc(total + 1, sizeof(*v));
    if (!v)
        return moat_err_sys(err, "moat.yaml");
    for (size_t i = 0; i < c->n_mounts; i++) {
        const struct config_mount *m = &c->mounts[i];
        if (!run_mount_target_ok(m->target))
            return moat_err_set(err, 0,
                                "%s: mounts: %s: the target must be an absolute path without "
                                "'..', not / and not under /proc, /sys or /dev",
                                c->path, m->target);
        v[k].source = file_path(m->source, workspace);
        if (!v[k].source) {
            moat_err_sys(err, "%s: mounts: source %s", c->path, m->source);
            goto fail;
        }
        v[k].target = m->target;
        v[k++].readonly = m->readonly;
        /* exclude: an empty tmpfs over each, so the sandbox never sees them */
        for (size_t j = 0; j < m->exclude.n; j++) {
            char *t = NULL;
            if (asprintf(&t, "%s/%s", m->target, m->exclude.v[j]) < 0) {
                moat_err_sys(err, "moat.yaml");
                goto fail;
            }
            if (strv_push(&o->owned, t, err) < 0)
                goto fail;
            v[k++] = (struct user_mount){.target = t, .tmpfs = true};
        }
    }
    if (prepend((void **)&o->mounts, &o->n_mounts, sizeof(*v), v, k, err) == 0)
        return 0;
fail:
    for (size_t i = 0; i < k; i++)
        free(v[i].source);
    return -1;
}

/* The METHOD /path lines of network.rules, each with its entry's host. */
static int file_http_rules(struct run_opts *o, struct moat_err *err)
{
    const struct config *c = &o->file;
    size_t n = 0;

    for (size_t i = 0; i < c->n_rules; i++)
        n += c->rules[i].http.n;
    o->net.http_rules = calloc(n + 1, sizeof(*o->net.http_rules));
    if (!o->net.http_rules)
        return moat_err_sys(err, "moat.yaml");
    for (size_t i = 0; i < c->n_rules; i++)
        for (size_t j = 0; j < c->rules[i].http.n; j++)
            if (proxy_http_rule_parse(c->rules[i].host, c->rules[i].http.v[j],
                                      &o->net.http_rules[o->net.n_http_rules++], err) < 0)
                return moat_err_prefix(err, "%s: network.rules", c->path);
    return 0;
}

/* network.ca_certs: each path made absolute here, as the proxy opens it later */
static int file_ca_certs(struct config *c, const char *workspace, struct moat_err *err)
{
    for (size_t i = 0; i < c->ca_certs.n; i++) {
        char *path = file_path(c->ca_certs.v[i], workspace);
        if (!path)
            return moat_err_sys(err, "%s: network.ca_certs: %s", c->path, c->ca_certs.v[i]);
        free(c->ca_certs.v[i]);
        c->ca_certs.v[i] = path;
    }
    return 0;
}

static int file_network(struct run_opts *o, const char *workspace, struct moat_err *err)
{
    const struct config *c = &o->file;
    _cleanup_free_ struct proxy_rule *rules = calloc(c->n_rules + 1, sizeof(*rules));
    _cleanup_free_ struct proxy_host *hosts = calloc(c->n_hosts + 1, sizeof(*hosts));
    char spec[600];

    if (!rules || !hosts)
        return moat_err_sys(err, "moat.yaml");
    if (o->network && strcmp(o->network, "none") == 0) {
        log_info("--network none: the network settings of %s do not apply", c->path);
        return 0;
    }
    for (size_t i = 0; i < c->n_rules; i++)
        if (proxy_rule_parse(c->rules[i].host, false, &rules[i], err) < 0)
            return moat_err_prefix(err, "%s: network.rules", c->path);
    if (file_http_rules(o, err) < 0 || file_ca_certs(&o->file, workspace, err) < 0)
        return -1;
    o->net.max_conns = c->max_conns;
    for (size_t i = 0; i < c->n_hosts; i++) {
        snprintf(spec, sizeof(spec), "%s:%s", c->hosts[i].name, c->hosts[i].addr);
        if (proxy_host_parse(spec, &hosts[i], err) < 0)
            return moat_err_prefix(err, "%s: network.hosts", c->path);
    }
    if (prepend((void **)&o->net.rules, &o->net.n_rules, sizeof(*rules), rules, c->n_rules, err) <
            0 ||
        prepend((void **)&o->net.hosts, &o->net.n_hosts, sizeof(*hosts), hosts, c->n_hosts, err) <
            0)
        return -1;
    if (!o->policy)
        o->policy = c->policy;
    /* A file that speaks of the network wants it, unless --network none says otherwise. */
    if (!o->network && (c->policy || c->n_rules || c->n_hosts || c->ca_certs.n || c->max_conns))
        o->network = "proxy";
    return 0;
}

/* command: a list is the argv; a string runs through sh -c. */
static int file_command(struct run_opts *o, struct moat_err *err)
{
    const struct config *c = &o->file;
    size_t n = c->command_is_shell ? 3 : c->command.n;

    if (!c->command.n)
        return 0;
    o->file_cmd = calloc(n + 1, sizeof(char *));
    if (!o->file_cmd)
        return moat_err_sys(err, "moat.yaml");
    if (c->command_is_shell) {
        o->file_cmd[0] = "/bin/sh";
        o->file_cmd[1] = "-c";
        o->file_cmd[2] = c->command.v[0];
    } else {
        memcpy(o->file_cmd, c->command.v, n * sizeof(char *));
    }
    return 0;
}

static void file_scalars(struct run_opts *o)
{
    const struct config *c = &o->file;

    if (!o->name && c->name)
        o->name = c->name;
    if (!o->image_set && c->base_image)
        o->image = strcmp(c->base_image, "host") == 0 ? NULL : c->base_image;
    if (!o->interactive_set && !o->tty && c->interactive == 1)
        o->interactive = true;
    if (!o->memory)
        o->memory = c->memory;
    if (!o->pids)
        o->pids = c->pids;
    if (!(o->cpus > 0))
        o->cpus = c->cpus;
    for (size_t i = 0; i < c->dependencies.n; i++)
        if (strcmp(c->dependencies.v[i], "docker:host") == 0)
            o->docker_host = true;
}

int run_apply_config(struct run_opts *o, const char *workspace, struct moat_err *err)
{
    char ws[PATH_MAX];
    struct config *c = &o->file;

    if (!realpath(workspace, ws))
        return moat_err_sys(err, "workspace %s", workspace);
    if (config_load(ws, c, err) < 0)
        return -1;
    if (!c->path[0])
        return 0;
    log_info("configuration from %s", c->path);
    file_scalars(o);
    return prepend((void **)&o->env, &o->n_env, sizeof(char *), c->env.v, c->env.n, err) < 0 ||
                   prepend((void **)&o->net.grants.names, &o->net.grants.n_names, sizeof(char *),
                           c->grants.v, c->grants.n, err) < 0 ||
                   file_mounts(o, ws, err) < 0 || file_network(o, ws, err) < 0 ||
                   file_command(o, err) < 0
               ? -1
               : 0;
}
