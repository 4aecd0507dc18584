/* moat image: pull, import, ls, inspect, rm, prune, unpack. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/run_image.h"
#include "image/image.h"
#include "lib/cleanup.h"
#include "lib/json.h"
#include "lib/parse.h"

static const char image_usage[] =
    "Usage: moat image COMMAND [flags] ...\n\n"
    "Manage the images moat runs: OCI and Docker images, checked and unpacked once\n"
    "into the cache under $MOAT_HOME/images (default ~/.moat/images).\n\n"
    "Commands:\n"
    "  pull REF          fetch REF, verify every digest, unpack it into the cache\n"
    "  import REF        the same for local transports (oci:, oci-archive:, docker-archive:)\n"
    "  ls [--json]       list cached images\n"
    "  inspect NAME      config, layers, sizes and digests of a cached image, as JSON\n"
    "  rm NAME...        forget references; an image goes with its last reference\n"
    "  prune             remove unreferenced images, blobs and interrupted pulls\n"
    "  unpack REF DIR    write REF's root filesystem into DIR (missing or empty)\n\n"
    "References:\n"
    "  oci:DIR[:TAG]                         an OCI image layout directory\n"
    "  oci-archive:FILE[:TAG]                a tar of an OCI image layout\n"
    "  docker-archive:FILE[:NAME:TAG]        `docker save` / skopeo output\n"
    "  docker://HOST[:PORT]/REPO[:TAG|@DIGEST]  a registry (REPO[:TAG] alone: $MOAT_REGISTRY,\n"
    "                                        default docker.io)\n"
    "NAME is a reference as pulled, or a ChainID or manifest digest (prefix of 4+ digits).\n\n"
    "Flags of pull, import and unpack:\n"
    "  -q, --quiet             no progress (shown per layer when stderr is a terminal)\n"
    "      --max-layer-size SIZE  refuse a layer that uncompresses to more (e.g. "
    "20g)\n" REGISTRY_FLAGS_HELP "Run `moat image COMMAND --help` for one command.\n";

struct image_cmd {
    const char *name, *args, *help;
    int min_args, max_args;
    bool pull_flags, json_flag;
};

static const struct image_cmd cmds[] = {
    {"pull", "REF", "Fetch REF, check every size and digest, unpack it into the cache.", 1, 1, true,
     false},
    {"import", "REF", "Like pull, for the local transports oci:, oci-archive:, docker-archive:.", 1,
     1, true, false},
    {"ls", "", "List cached images: ChainID, size, references.", 0, 0, false, true},
    {"inspect", "NAME", "Print a cached image's config, layers, sizes and digests as JSON.", 1, 1,
     false, false},
    {"rm", "NAME...",
     "Forget each reference (the image goes with its last one); a digest removes the image.", 1, 64,
     false, false},
    {"prune", "", "Remove images without references, unreferenced blobs, interrupted pulls.", 0, 0,
     false, false},
    {"unpack", "REF DIR",
     "Write REF's root filesystem into DIR (missing or empty), through the same checks and\n"
     "layer application as a run's image. Rootless, every file belongs to you.",
     2, 2, true, false},
};

struct image_flags {
    struct image_pull_opts pull;
    bool json;
    char **args;
    int n_args;
};

static void cmd_help(const struct image_cmd *c, FILE *out)
{
    fprintf(out, "Usage: moat image %s%s%s%s%s%s\n\n%s\n", c->name, c->pull_flags ? " [-q]" : "",
            c->pull_flags ? " [--max-layer-size SIZE]" : "", c->json_flag ? " [--json]" : "",
            c->args[0] ? " " : "", c->args, c->help);
    if (c->pull_flags)
        fprintf(out,
                "\n  -q, --quiet                no progress on stderr\n"
                "      --max-layer-size SIZE  refuse a layer that uncompresses to more\n"
                "%s",
                strcmp(c->name, "import") != 0 ? REGISTRY_FLAGS_HELP : "");
    if (c->json_flag)
        fprintf(out, "\n      --json                 one JSON array instead of a table\n");
}

/* 1: help printed; 0: parsed; -1: ERR set. */
static int parse(const struct image_cmd *c, int argc, char **argv, struct image_flags *f,
                 struct moat_err *err)
{
    enum { OPT_MAX = 256, OPT_JSON, OPT_REGISTRY /* and the two after it */ };
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},     {"max-layer-size", required_argument, NULL, OPT_MAX},
        {"json", no_argument, NULL, OPT_JSON}, REGISTRY_LONGOPTS(OPT_REGISTRY),
        {"help", no_argument, NULL, 'h'},      {0},
    };
    int ch;
    int64_t size;

    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
        if (ch == 'h') {
            cmd_help(c, stdout);
            return 1;
        } else if (ch == 'q' && c->pull_flags) {
            f->pull.quiet = true;
        } else if (ch == OPT_MAX && c->pull_flags) {
            if (parse_size("--max-layer-size", optarg, &size, err) < 0)
                return -1;
            f->pull.max_layer = (uint64_t)size;
        } else if (ch == OPT_JSON && c->json_flag) {
            f->json = true;
        } else if (ch >= OPT_REGISTRY && ch <= OPT_REGISTRY + 2 && c->pull_flags &&
                   strcmp(c->name, "import") != 0) {
            if (registry_flag(ch - OPT_REGISTRY, optarg, &f->pull, err) < 0)
                return -1;
        } else {
            return moat_err_set(err, 0, "image %s: unknown flag %s (see moat image %s --help)",
                                c->name, argv[optind - 1], c->name);
        }
    }
    f->args = argv + optind;
    f->n_args = argc - optind;
    if (f->n_args < c->min_args || f->n_args > c->max_args)
        return moat_err_set(err, 0, "usage: moat image %s %s", c->name, c->args);
    return 0;
}

static int parse_ref(const char *s, bool local_only, struct image_ref *ref, struct moat_err *err)
{
    if (image_ref_parse(s, ref, err) < 0)
        return -1;
    if (ref->transport == IMAGE_HOST)
        return moat_err_set(err, EINVAL, "%s: the host image needs no pull; use it with moat run",
                            s);
    if (local_only && ref->transport == IMAGE_DOCKER)
        return moat_err_set(err, EINVAL,
                            "image import %s: a registry image; use moat image pull for those", s);
    return 0;
}

static int do_pull(const struct image_flags *f, bool local_only, struct moat_err *err)
{
    struct image_ref ref;
    struct image_info info;

    if (parse_ref(f->args[0], local_only, &ref, err) < 0 ||
        image_pull(&ref, &f->pull, &info, err) < 0)
        return -1;
    printf("%s\n", info.chain_id.str);
    image_info_free(&info);
    return 0;
}

static int do_unpack(const struct image_flags *f, struct moat_err *err)
{
    struct image_ref ref;
    struct image_info info;

    if (parse_ref(f->args[0], false, &ref, err) < 0 ||
        image_unpack(&ref, &f->pull, f->args[1], &info, err) < 0)
        return -1;
    if (!f->pull.quiet && isatty(STDERR_FILENO))
        fprintf(stderr, "%s: unpacked into %s\n", f->args[0], f->args[1]);
    image_info_free(&info);
    return 0;
}

static void human_size(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1024 && u + 1 < ARRAY_SIZE(units))
        v /= 1024, u++;
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int print_ls_json(const struct image_entry *e, size_t n, struct moat_err *err)
{
    _cleanup_json_gen_ yajl_gen g = yajl_gen_alloc(NULL);
    _cleanup_free_ char *text = NULL;

    if (!g)
        return moat_err_set(err, ENOMEM, "ls");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        yajl_gen_map_open(g);
        json_gen_kv(g, "chain_id", e[i].chain_id.str);
        json_gen_kv(g, "manifest", e[i].manifest.str);
        json_gen_kv(g, "config", e[i].config.str);
        json_gen_ku(g, "size", e[i].size);
        json_gen_kv(g, "created", e[i].created);
        json_gen_strv(g, "refs", e[i].refs);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    if (json_gen_take(g, &text, err) < 0)
        return -1;
    printf("%s\n", text);
    return 0;
}

static void print_ls_table(const struct image_entry *e, size_t n)
{
    char size[32];

    printf("%-12s  %-12s  %10s  %s\n", "CHAIN ID", "MANIFEST", "SIZE", "REFERENCES");
    for (size_t i = 0; i < n; i++) {
        human_size(e[i].size, size, sizeof(size));
        printf("%.12s  %.12s  %10s  ", image_digest_hex(&e[i].chain_id),
               image_digest_hex(&e[i].manifest), size);
        for (size_t j = 0; e[i].refs && e[i].refs[j]; j++)
            printf("%s%s", j ? ", " : "", e[i].refs[j]);
        printf("%s\n", e[i].refs && e[i].refs[0] ? "" : "<none>");
    }
}

static int do_ls(const struct image_flags *f, struct moat_err *err)
{
    struct image_entry *e;
    size_t n;
    int r = 0;

    if (image_list(&e, &n, err) < 0)
        return -1;
    if (f->json)
        r = print_ls_json(e, n, err);
    else
        print_ls_table(e, n);
    image_entries_free(e, n);
    return r;
}

static int do_inspect(const struct image_flags *f, struct moat_err *err)
{
    _cleanup_free_ char *json = NULL;

    if (image_inspect_json(f->args[0], &json, err) < 0)
        return -1;
    printf("%s\n", json);
    return 0;
}

static int do_rm(const struct image_flags *f, struct moat_err *err)
{
    for (int i = 0; i < f->n_args; i++) {
        if (image_remove(f->args[i], err) < 0)
            return -1;
        printf("%s\n", f->args[i]);
    }
    return 0;
}

static int do_prune(struct moat_err *err)
{
    uint64_t freed;

    if (image_prune(&freed, err) < 0)
        return -1;
    printf("removed %llu entries\n", (unsigned long long)freed);
    return 0;
}

static int dispatch(const struct image_cmd *c, const struct image_flags *f, struct moat_err *err)
{
    if (strcmp(c->name, "pull") == 0)
        return do_pull(f, false, err);
    if (strcmp(c->name, "import") == 0)
        return do_pull(f, true, err);
    if (strcmp(c->name, "ls") == 0)
        return do_ls(f, err);
    if (strcmp(c->name, "inspect") == 0)
        return do_inspect(f, err);
    if (strcmp(c->name, "rm") == 0)
        return do_rm(f, err);
    if (strcmp(c->name, "prune") == 0)
        return do_prune(err);
    return do_unpack(f, err);
}

int cmd_image(int argc, char **argv)
{
    struct image_flags f = {0};
    struct moat_err err = {0};
    int r;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(image_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        r = parse(&cmds[i], argc - 1, argv + 1, &f, &err);
        if (r == 0)
            r = dispatch(&cmds[i], &f, &err);
        if (r < 0) {
            cli_print_err(&err);
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    fprintf(stderr, "moat: image: unknown command %s (see moat image --help)\n", argv[1]);
    return CLI_EXIT_USAGE;
}
