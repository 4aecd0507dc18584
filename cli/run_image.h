/* moat run --image (cli/run_image.c): the image pulled or found in the cache,
 * the run's own layer on it, and the image's defaults for the command. */
#ifndef MOAT_CLI_RUN_IMAGE_H
#define MOAT_CLI_RUN_IMAGE_H

#include "image/image.h"

struct run_image {
    struct image_info info;
    struct image_run_root rr;
    char **argv; /* malloc'd vector of borrowed strings */
    bool active;
};

/* Pull REF if it is not cached (progress on a terminal; PULL's registry
 * flags for docker://), then make the run's layer in RUN_DIR with ETC's
 * files; UID:GID are the ids moatuser stands for. */
int run_image_prepare(const char *ref, const struct image_pull_opts *pull, const char *run_dir,
                      const struct image_etc *etc, uid_t uid, gid_t gid, struct run_image *ri,
                      struct moat_err *err);

/* The registry flags `moat image pull|unpack` and `moat run --image` share,
 * as getopt_long entries with the values BASE, BASE+1, BASE+2. */
#define REGISTRY_LONGOPTS(base)                                                                    \
    {"creds", required_argument, NULL, (base)},                                                    \
        {"tls-verify", optional_argument, NULL, (base) + 1},                                       \
    {                                                                                              \
        "cert-dir", required_argument, NULL, (base) + 2                                            \
    }

#define REGISTRY_FLAGS_HELP                                                                        \
    "      --creds USER:PASS  docker://: log in as USER (default: your containers\n"               \
    "                        auth.json or ~/.docker/config.json entry, else anonymous)\n"          \
    "      --tls-verify=false  docker://: no certificate check; plain HTTP when the\n"             \
    "                        registry does not speak TLS\n"                                        \
    "      --cert-dir DIR    docker://: extra CAs (*.crt) and a client pair (*.cert, *.key)\n"

/* The flag OPT - BASE (0, 1, 2 as above) with its ARG into O. */
int registry_flag(int which, const char *arg, struct image_pull_opts *o, struct moat_err *err);

/* The command: the image's Entrypoint, then CMD (NULL or empty: the image's
 * Cmd). An error when neither the image nor the caller gives one. */
int run_image_argv(struct run_image *ri, char **cmd, char *const **argv, struct moat_err *err);

/* After the run: the run's layer goes (unless KEEP), the rest is freed. */
void run_image_finish(struct run_image *ri, bool keep);

#endif
