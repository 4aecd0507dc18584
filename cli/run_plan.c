/* moat run --dry-run: what the run would be, from the flags and moat.yaml
 * together, without starting anything. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "cli/run.h"
#include "lib/cleanup.h"
#include "lib/json.h"
#include "proxy/proxy.h"

static const char *network_mode(const struct run_opts *o)
{
    return o->proxy_net ? "proxy" : "none";
}

static void rule_text(const struct proxy_rule *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s %s%s", r->deny ? "deny" : "allow", r->wildcard ? "*." : "", r->name);
    if (r->port)
        snprintf(buf + strlen(buf), len - strlen(buf), ":%u", r->port);
}

static void http_rule_text(const struct proxy_http_rule *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", r->host.wildcard ? "*." : "", r->host.name);
    if (r->host.port)
        snprintf(buf + strlen(buf), len - strlen(buf), ":%u", r->host.port);
    snprintf(buf + strlen(buf), len - strlen(buf), ": %s %s %s", r->deny ? "deny" : "allow",
             r->method, r->path);
}

static void host_text(const struct proxy_host *h, char *buf, size_t len)
{
    char a[INET_ADDRSTRLEN];

    inet_ntop(AF_INET, &h->addr, a, sizeof(a));
    snprintf(buf, len, "%s -> %s", h->name, a);
    if (h->port)
        snprintf(buf + strlen(buf), len - strlen(buf), ":%u", h->port);
}

/* Whether a later entry sets the same variable as env[I] (the later one wins). */
static bool overridden(const struct run_opts *o, size_t i)
{
    size_t klen = strcspn(o->env[i], "=") + 1;

    for (size_t j = i + 1; j < o->n_env; j++)
        if (strncmp(o->env[i], o->env[j], klen) == 0)
            return true;
    return false;
}

/* The proxy's connection cap as the run will have it. */
static unsigned max_conns(const struct run_opts *o)
{
    return o->net.max_conns ? o->net.max_conns : PROXY_MAX_CONNS_DEFAULT;
}

static void print_text(const struct run_opts *o, const char *workspace, const char *name)
{
    char buf[600];

    printf("run %s (dry run: nothing started)\n", name);
    printf("  workspace   %s (read-write at /workspace)\n", workspace);
    printf("  config      %s\n", o->file.path[0] ? o->file.path : "(no moat.yaml)");
    printf("  image       %s\n", o->image ? o->image : "host");
    printf("  command    ");
    for (char **a = o->cmd; a && *a; a++)
        printf(" %s", *a);
    printf("%s\n", o->cmd && o->cmd[0] ? "" : " (the image's)");
    for (size_t i = 0; i < o->n_env; i++)
        if (!overridden(o, i))
            printf("  env         %s\n", o->env[i]);
    for (size_t i = 0; i < o->n_mounts; i++) {
        const struct user_mount *m = &o->mounts[i];
        if (m->tmpfs)
            printf("  mount       (empty tmpfs) -> %s\n", m->target);
        else
            printf("  mount       %s -> %s%s\n", m->source, m->target, m->readonly ? " (ro)" : "");
    }
    printf("  network     %s", network_mode(o));
    if (o->proxy_net)
        printf(", policy %s, at most %u connections", o->policy ? o->policy : "permissive",
               max_conns(o));
    putchar('\n');
    for (size_t i = 0; i < o->net.n_rules; i++) {
        rule_text(&o->net.rules[i], buf, sizeof(buf));
        printf("  rule        %s\n", buf);
    }
    for (size_t i = 0; i < o->net.n_http_rules; i++) {
        http_rule_text(&o->net.http_rules[i], buf, sizeof(buf));
        printf("  rule        %s\n", buf);
    }
    for (size_t i = 0; i < o->net.n_hosts; i++) {
        host_text(&o->net.hosts[i], buf, sizeof(buf));
        printf("  host        %s\n", buf);
    }
    for (size_t i = 0; i < o->net.grants.n_names; i++)
        printf("  grant       %s\n", o->net.grants.names[i]);
    if (o->memory || o->pids || o->cpus > 0)
        printf("  limits      memory %lld, pids %lld, cpus %g (0: none)\n", (long long)o->memory,
               (long long)o->pids, o->cpus);
    if (o->docker_host)
        printf("  docker      the host's Docker socket at /var/run/docker.sock\n");
}

static void gen_mounts(yajl_gen g, const struct run_opts *o)
{
    json_gen_str(g, "mounts");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < o->n_mounts; i++) {
        const struct user_mount *m = &o->mounts[i];
        yajl_gen_map_open(g);
        if (m->tmpfs) {
            json_gen_kv(g, "type", "tmpfs");
        } else {
            json_gen_kv(g, "type", "bind");
            json_gen_kv(g, "source", m->source);
        }
        json_gen_kv(g, "target", m->target);
        json_gen_str(g, "readonly");
        yajl_gen_bool(g, m->readonly);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
}

static void gen_network(yajl_gen g, const struct run_opts *o)
{
    char buf[600];

    json_gen_str(g, "network");
    yajl_gen_map_open(g);
    json_gen_kv(g, "mode", network_mode(o));
    json_gen_kv(g, "policy", o->proxy_net ? (o->policy ? o->policy : "permissive") : NULL);
    json_gen_str(g, "max_connections");
    if (o->proxy_net)
        yajl_gen_integer(g, max_conns(o));
    else
        yajl_gen_null(g);
    json_gen_str(g, "rules");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < o->net.n_rules; i++) {
        rule_text(&o->net.rules[i], buf, sizeof(buf));
        json_gen_str(g, buf);
    }
    yajl_gen_array_close(g);
    json_gen_str(g, "http_rules");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < o->net.n_http_rules; i++) {
        http_rule_text(&o->net.http_rules[i], buf, sizeof(buf));
        json_gen_str(g, buf);
    }
    yajl_gen_array_close(g);
    json_gen_str(g, "hosts");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < o->net.n_hosts; i++) {
        host_text(&o->net.hosts[i], buf, sizeof(buf));
        json_gen_str(g, buf);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
}

static void print_json(const struct run_opts *o, const char *workspace, const char *name)
{
    _cleanup_json_gen_ yajl_gen g = yajl_gen_alloc(NULL);
    _cleanup_free_ char *text = NULL;
    struct moat_err err = {0};

    if (!g)
        return;
    yajl_gen_map_open(g);
    json_gen_kv(g, "name", name);
    json_gen_kv(g, "workspace", workspace);
    json_gen_kv(g, "config", o->file.path[0] ? o->file.path : NULL);
    json_gen_kv(g, "image", o->image ? o->image : "host");
    json_gen_strv(g, "command", o->cmd && o->cmd[0] ? o->cmd : NULL);
    json_gen_str(g, "env");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < o->n_env; i++)
        if (!overridden(o, i))
            json_gen_str(g, o->env[i]);
    yajl_gen_array_close(g);
    gen_mounts(g, o);
    gen_network(g, o);
    json_gen_strv(g, "grants", (char **)o->net.grants.names);
    json_gen_str(g, "limits");
    yajl_gen_map_open(g);
    json_gen_ku(g, "memory", (uint64_t)o->memory);
    json_gen_ku(g, "pids", (uint64_t)o->pids);
    json_gen_str(g, "cpus");
    yajl_gen_double(g, o->cpus);
    yajl_gen_map_close(g);
    json_gen_str(g, "docker_host");
    yajl_gen_bool(g, o->docker_host);
    json_gen_str(g, "interactive");
    yajl_gen_bool(g, o->interactive);
    yajl_gen_map_close(g);
    if (json_gen_take(g, &text, &err) == 0)
        printf("%s\n", text);
}

void run_print_plan(const struct run_opts *o, const char *workspace, const char *name, bool json)
{
    json ? print_json(o, workspace, name) : print_text(o, workspace, name);
}
