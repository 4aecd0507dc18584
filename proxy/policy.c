/* The network policy of a run: names allowed unless denied; raw TCP only to a
 * name:port an allow rule names; the user's own name mappings. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/parse.h"
#include "netns/dns.h"
#include "proxy/internal.h"

static bool rule_matches(const struct proxy_rule *r, const char *name)
{
    if (!r->wildcard)
        return strcmp(r->name, name) == 0;
    /* "*.example.com" covers a.example.com and a.b.example.com, not example.com. */
    size_t n = strlen(name), s = strlen(r->name);
    return n > s + 1 && name[n - s - 1] == '.' && strcmp(name + n - s, r->name) == 0;
}

/* A grant's provider covers NAME: its credential goes there, so strict allows it. */
static bool grant_covers(const struct proxy_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_grants; i++) {
        const struct provider *p = cfg->grants[i].provider;
        for (size_t r = 0; p && r < p->n_routes; r++)
            for (size_t h = 0; h < p->routes[r].n_hosts; h++)
                if (provider_host_match(p->routes[r].hosts[h], name))
                    return true;
    }
    return false;
}

bool policy_name_allowed(const struct proxy_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_rules; i++)
        if (cfg->rules[i].deny && rule_matches(&cfg->rules[i], name))
            return false;
    if (!cfg->strict)
        return true;
    for (size_t i = 0; i < cfg->n_rules; i++)
        if (!cfg->rules[i].deny && rule_matches(&cfg->rules[i], name))
            return true;
    return grant_covers(cfg, name);
}

bool policy_raw_allowed(const struct proxy_config *cfg, const char *name, uint16_t port)
{
    /* METHOD /path rules cannot be judged on raw bytes: such a host gets none */
    if (!policy_name_allowed(cfg, name) || policy_http_rules_for(cfg, name, port))
        return false;
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct proxy_rule *r = &cfg->rules[i];
        if (!r->deny && r->port == port && rule_matches(r, name))
            return true;
    }
    return false;
}

const struct proxy_host *policy_host(const struct proxy_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_hosts; i++)
        if (strcmp(cfg->hosts[i].name, name) == 0)
            return &cfg->hosts[i];
    return NULL;
}

/* "1".."65535" into *PORT. */
static int parse_port(const char *flag, const char *spec, const char *s, uint16_t *port,
                      struct moat_err *err)
{
    int64_t v;

    if (parse_count(flag, s, &v, err) < 0 || v < 1 || v > 65535)
        return moat_err_set(err, 0, "%s %s: the port must be 1-65535", flag, spec);
    *port = (uint16_t)v;
    return 0;
}

/* NAME (or *.NAME when WILDCARD_OK) into its canonical form in OUT. */
static int parse_name(const char *flag, const char *spec, const char *name, size_t len,
                      bool wildcard_ok, char out[PROXY_NAME_BUF], bool *wildcard,
                      struct moat_err *err)
{
    char buf[DNS_NAME_BUF + 2];

    *wildcard = wildcard_ok && len > 2 && name[0] == '*' && name[1] == '.';
    if (*wildcard) {
        name += 2;
        len -= 2;
    }
    if (len >= sizeof(buf))
        return moat_err_set(err, 0, "%s %s: the name is too long", flag, spec);
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (dns_name_canon(buf, out, err) < 0)
        return moat_err_set(err, 0,
                            "%s %s: not a host name (letters, digits, '-' and '_' in "
                            "dot-separated labels%s)",
                            flag, spec, wildcard_ok ? ", or *.name" : "");
    return 0;
}

int proxy_rule_parse(const char *spec, bool deny, struct proxy_rule *rule, struct moat_err *err)
{
    const char *flag = deny ? "--deny" : "--allow";
    const char *colon = strrchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);

    memset(rule, 0, sizeof(*rule));
    rule->deny = deny;
    if (colon && deny)
        return moat_err_set(err, 0, "--deny %s: a deny rule names a host, not a port", spec);
    if (colon && parse_port(flag, spec, colon + 1, &rule->port, err) < 0)
        return -1;
    return parse_name(flag, spec, spec, len, true, rule->name, &rule->wildcard, err);
}

int proxy_host_parse(const char *spec, struct proxy_host *host, struct moat_err *err)
{
    char addr[INET_ADDRSTRLEN];
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    size_t alen = c1 ? (size_t)((c2 ? c2 : spec + strlen(spec)) - (c1 + 1)) : 0;
    bool wildcard;

    memset(host, 0, sizeof(*host));
    if (!c1 || alen == 0 || alen >= sizeof(addr))
        return moat_err_set(err, 0, "--add-host %s: expected NAME:ADDR[:PORT]", spec);
    memcpy(addr, c1 + 1, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, &host->addr) != 1)
        return moat_err_set(err, 0, "--add-host %s: %s is not an IPv4 address", spec, addr);
    if (c2 && parse_port("--add-host", spec, c2 + 1, &host->port, err) < 0)
        return -1;
    return parse_name("--add-host", spec, spec, (size_t)(c1 - spec), false, host->name, &wildcard,
                      err);
}

/* ---- METHOD /path rules ---- */

/* A pattern's path: from /, no empty, "." or ".." segments (requests are matched
 * after those are resolved), no '%' (patterns are written decoded), "**" only as
 * a whole segment. */
static bool pattern_ok(const char *s)
{
    if (s[0] != '/')
        return false;
    if (strcmp(s, "/") == 0)
        return true;
    for (const char *seg = s + 1;; seg += strcspn(seg, "/") + 1) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        const char *dstar = memmem(seg, n, "**", 2);
        if (dstar && n != 2)
            return false;
        if (!seg[n])
            return true;
    }
}

int proxy_http_rule_parse(const char *host, const char *line, struct proxy_http_rule *rule,
                          struct moat_err *err)
{
    char decision[8], path[PROXY_PATH_BUF + 1], extra[2];

    memset(rule, 0, sizeof(*rule));
    if (proxy_rule_parse(host, false, &rule->host, err) < 0)
        return -1;
    /* one kind of separator, as cli/config.c checks it */
    if (strpbrk(line, "\t\r\n\v\f") ||
        sscanf(line, "%7s %32s %256s %1s", decision, rule->method, path, extra) != 3)
        return moat_err_set(err, 0, "%s: \"%s\": expected \"allow|deny METHOD /path\"", host, line);
    if (strcmp(decision, "allow") != 0 && strcmp(decision, "deny") != 0)
        return moat_err_set(err, 0, "%s: \"%s\": the first word is allow or deny", host, line);
    rule->deny = decision[0] == 'd';
    if (strcmp(rule->method, "*") != 0 &&
        strspn(rule->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(rule->method))
        return moat_err_set(err, 0, "%s: \"%s\": the method is * or upper-case letters", host,
                            line);
    if (strlen(path) >= PROXY_PATH_BUF)
        return moat_err_set(err, 0, "%s: \"%s\": the path is longer than %d bytes", host, line,
                            PROXY_PATH_BUF - 1);
    /* "/repos/" is "/repos": requests are matched with their trailing slash dropped */
    size_t n = strlen(path);
    if (n > 1 && path[n - 1] == '/')
        path[n - 1] = '\0';
    if (!pattern_ok(path) || strchr(path, '%') || strpbrk(path, "?#\\"))
        return moat_err_set(err, 0,
                            "%s: \"%s\": the path starts with /, has no empty, . or .. "
                            "segments, no %%-escapes, ? or #, and ** only as a whole segment",
                            host, line);
    memcpy(rule->path, path, strlen(path) + 1);
    return 0;
}

static bool http_rule_applies(const struct proxy_http_rule *r, const char *name, uint16_t port)
{
    return (r->host.port == 0 || r->host.port == port) && rule_matches(&r->host, name);
}

bool policy_http_rules_for(const struct proxy_config *cfg, const char *name, uint16_t port)
{
    for (size_t i = 0; i < cfg->n_http_rules; i++)
        if (http_rule_applies(&cfg->http_rules[i], name, port))
            return true;
    return false;
}

bool policy_http_allowed(const struct proxy_config *cfg, const char *name, uint16_t port,
                         const char *method, const char *path, const struct proxy_http_rule **deny)
{
    bool any_allow = false, allowed = false;

    *deny = NULL;
    for (size_t i = 0; i < cfg->n_http_rules; i++) {
        const struct proxy_http_rule *r = &cfg->http_rules[i];
        if (!http_rule_applies(r, name, port))
            continue;
        bool hit = (strcmp(r->method, "*") == 0 || strcmp(r->method, method) == 0) &&
                   http_path_match(r->path, path);
        if (hit && r->deny) {
            *deny = r; /* deny wins over any allow */
            return false;
        }
        any_allow |= !r->deny;
        allowed |= hit;
    }
    /* allow lines make the host's list exhaustive; deny lines alone leave the rest open */
    return allowed || !any_allow;
}
