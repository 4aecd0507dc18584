#include "cli/run_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/log.h"

/* "sha256:HEX" or at least 4 bare hex digits: a digest, not a reference. */
static bool is_digest(const char *s)
{
    if (strncmp(s, "sha256:", 7) == 0)
        return true;
    return strlen(s) >= 4 && strspn(s, "0123456789abcdef") == strlen(s);
}

int registry_flag(int which, const char *arg, struct image_pull_opts *o, struct moat_err *err)
{
    if (which == 0) {
        o->creds = arg;
    } else if (which == 2) {
        o->cert_dir = arg;
    } else if (!arg || strcmp(arg, "true") == 0) {
        o->no_tls_verify = false;
    } else if (strcmp(arg, "false") == 0) {
        o->no_tls_verify = true;
    } else {
        return moat_err_set(err, 0, "--tls-verify=%s: expected true or false", arg);
    }
    return 0;
}

int run_image_prepare(const char *ref_text, const struct image_pull_opts *pull, const char *run_dir,
                      const struct image_etc *etc, uid_t uid, gid_t gid, struct run_image *ri,
                      struct moat_err *err)
{
    struct image_ref ref;
    struct image_pull_opts opts = *pull;

    memset(ri, 0, sizeof(*ri));
    if (is_digest(ref_text)) {
        /* A ChainID or manifest digest (prefix) names a cached image as it is. */
        if (image_lookup(ref_text, &ri->info, err) < 0)
            return -1;
    } else if (image_ref_parse(ref_text, &ref, err) < 0) {
        return moat_err_prefix(err, "--image");
    } else if (image_pull(&ref, &opts, &ri->info, err) < 0) {
        return -1;
    }
    if (image_run_root_create(&ri->info, run_dir, etc, uid, gid, &ri->rr, err) < 0) {
        image_info_free(&ri->info);
        return -1;
    }
    if (ri->info.user)
        log_info("image %s: User %s ignored: the agent is always %s (%d)", ref_text, ri->info.user,
                 RT_SANDBOX_USER, RT_SANDBOX_UID);
    ri->active = true;
    return 0;
}

static size_t count(char **v)
{
    size_t n = 0;

    while (v && v[n])
        n++;
    return n;
}

int run_image_argv(struct run_image *ri, char **cmd, char *const **argv, struct moat_err *err)
{
    char **tail = cmd && cmd[0] ? cmd : ri->info.cmd;
    size_t ne = count(ri->info.entrypoint), nt = count(tail);

    if (ne + nt == 0)
        return moat_err_set(err, 0,
                            "run: the image has no Entrypoint or Cmd; give a command "
                            "(moat run --image REF -- CMD [ARGS...])");
    ri->argv = calloc(ne + nt + 1, sizeof(char *));
    if (!ri->argv)
        return moat_err_set(err, ENOMEM, "run");
    for (size_t i = 0; i < ne; i++)
        ri->argv[i] = ri->info.entrypoint[i];
    for (size_t i = 0; i < nt; i++)
        ri->argv[ne + i] = tail[i];
    *argv = ri->argv;
    return 0;
}

void run_image_finish(struct run_image *ri, bool keep)
{
    struct moat_err err = {0};

    if (!ri->active)
        return;
    if (image_run_root_remove(&ri->rr, keep, &err) < 0)
        cli_print_err(&err);
    free(ri->argv);
    image_info_free(&ri->info);
    ri->active = false;
}
