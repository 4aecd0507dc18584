/* libFuzzer target for runtime/spec.c: arbitrary bytes as config.json and as an exec
 * process.json. A parse either fails with a message naming the document, or yields a
 * struct whose every promise holds (args non-empty, paths absolute, ranges ordered). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/spec.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_process(const struct oci_process *p)
{
    CHECK(p->args && p->args[0] && p->args[0][0]);
    CHECK(p->env);
    for (size_t i = 0; p->env[i]; i++)
        CHECK(strchr(p->env[i], '=') && p->env[i][0] != '=');
    CHECK(p->cwd && p->cwd[0] == '/');
    for (size_t i = 0; i < p->n_rlimits; i++)
        CHECK(p->rlimits[i].soft <= p->rlimits[i].hard);
    CHECK(!p->has_umask || p->umask <= 0777);
}

static void check_spec(const struct oci_spec *s)
{
    CHECK(s->oci_version && strncmp(s->oci_version, "1.", 2) == 0);
    if (s->has_process)
        check_process(&s->process);
    for (size_t i = 0; i < s->n_mounts; i++)
        CHECK(s->mounts[i].destination[0] == '/' && s->mounts[i].options);
    for (size_t i = 0; i < s->lx.n_namespaces; i++)
        CHECK(oci_namespace_name(s->lx.namespaces[i].type));
    for (size_t i = 0; i < s->lx.n_uid_mappings; i++)
        CHECK(s->lx.uid_mappings[i].size > 0);
    for (size_t i = 0; i < s->lx.n_devices; i++)
        CHECK(s->lx.devices[i].path[0] == '/');
    CHECK(!s->lx.seccomp_json || strlen(s->lx.seccomp_json) == s->lx.seccomp_len);
    CHECK(s->lx.resources.n_dev_rules <= OCI_MAX_DEV_RULES);
    for (size_t i = 0; i < s->lx.resources.n_dev_rules; i++) {
        const struct oci_dev_rule *r = &s->lx.resources.dev_rules[i];
        CHECK(r->type == 'a' || r->type == 'b' || r->type == 'c');
        CHECK(r->major >= -1 && r->major <= UINT32_MAX && r->minor >= -1 && r->minor <= UINT32_MAX);
        CHECK(r->access[0] && strspn(r->access, "rwm") == strlen(r->access));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct oci_spec s;
    struct moat_err err;

    if (oci_spec_parse("config.json", (const char *)data, size, &s, &err) == 0) {
        check_spec(&s);
        oci_spec_free(&s);
    } else {
        CHECK(strncmp(err.msg, "config.json: ", 13) == 0);
    }
    if (oci_process_parse("process.json", (const char *)data, size, &s, &err) == 0) {
        check_process(&s.process);
        oci_spec_free(&s);
    }
    return 0;
}
