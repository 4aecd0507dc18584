/* Image references in the syntax skopeo and podman users know, and the OCI
 * digest grammar. Pure string work: nothing here touches the filesystem. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"
#include "lib/cleanup.h"

#define DEFAULT_REGISTRY "docker.io"
#define TAG_MAX 128

/* algorithm ::= component (separator component)*, component ::= [a-z0-9]+,
 * separator ::= [+._-] (OCI image spec, descriptor.md). */
static bool valid_algorithm(const char *s, size_t n)
{
    bool want_component = true;

    for (size_t i = 0; i < n; i++) {
        if (islower((unsigned char)s[i]) || isdigit((unsigned char)s[i])) {
            want_component = false;
        } else if (strchr("+._-", s[i]) && !want_component) {
            want_component = true;
        } else {
            return false;
        }
    }
    return n > 0 && !want_component;
}

static bool valid_encoded(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("=_-", *s))
            return false;
    return true;
}

int image_digest_parse(const char *s, const char *what, struct image_digest *d,
                       struct moat_err *err)
{
    const char *colon = s ? strchr(s, ':') : NULL;

    if (!colon || !valid_algorithm(s, (size_t)(colon - s)) || !valid_encoded(colon + 1))
        return moat_err_set(err, EINVAL, "%s: \"%.80s\" is not a digest (algorithm:encoded)", what,
                            s ? s : "");
    if ((size_t)(colon - s) != 6 || strncmp(s, "sha256", 6) != 0)
        return moat_err_set(err, ENOTSUP, "%s: digest %.80s: only sha256 is supported", what, s);
    /* Lower-case hex of exactly 64 digits: the digest becomes a file name, so
     * nothing but [0-9a-f] may reach a path. */
    if (strlen(colon + 1) != 64 || strspn(colon + 1, "0123456789abcdef") != 64)
        return moat_err_set(err, EINVAL, "%s: digest %.80s: sha256 needs 64 lower-case hex digits",
                            what, s);
    memcpy(d->str, s, IMAGE_DIGEST_LEN);
    d->str[IMAGE_DIGEST_LEN] = '\0';
    return 0;
}

const char *image_default_registry(void)
{
    const char *r = getenv("MOAT_REGISTRY");

    return r && *r ? r : DEFAULT_REGISTRY;
}

/* [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)* */
static bool valid_path_component(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t run = 0;
        while (i < n && (islower((unsigned char)s[i]) || isdigit((unsigned char)s[i])))
            i++, run++;
        if (run == 0)
            return false;
        if (i == n)
            return true;
        size_t sep = i;
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
        } else {
            while (i < n && s[i] == '-')
                i++;
        }
        if (i == sep || i == n)
            return false;
    }
    return n > 0;
}

static bool valid_repo(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= IMAGE_NAME_MAX)
        return false;
    for (const char *p = s;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (!valid_path_component(p, len))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

/* host[:port]: dot-separated [A-Za-z0-9-] labels not starting or ending in '-'. */
static bool valid_host(const char *s)
{
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);

    if (n == 0 || strlen(s) >= IMAGE_NAME_MAX)
        return false;
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!isalnum((unsigned char)s[i]) && s[i] != '-')
                return false;
            continue;
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return false;
        start = i + 1;
    }
    if (colon) {
        const char *port = colon + 1;
        size_t digits = strspn(port, "0123456789");
        if (digits == 0 || digits > 5 || port[digits] || atoi(port) > 65535)
            return false;
    }
    return true;
}

/* [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static bool valid_tag(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > TAG_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return false;
    return true;
}

/* An OCI layout's org.opencontainers.image.ref.name: alphanumerics joined by
 * single separators from "-._:@/+" (image spec annotations.md). */
static bool valid_ref_name(const char *s)
{
    size_t n = strlen(s);
    bool want_alnum = true;

    if (n == 0 || n >= IMAGE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (isalnum((unsigned char)s[i])) {
            want_alnum = false;
            continue;
        }
        if (want_alnum || !strchr("-._:@/+", s[i]))
            return false;
        if (s[i] == '-' && s[i + 1] == '-')
            i++;
        want_alnum = true;
    }
    return !want_alnum;
}

static bool looks_like_host(const char *s, size_t n)
{
    return memchr(s, '.', n) || memchr(s, ':', n) || (n == 9 && strncmp(s, "localhost", 9) == 0);
}

/* NAME[:TAG][@DIGEST] in the docker reference grammar, normalised the way
 * docker does: no host means DEFAULT_HOST, and docker.io's one-component
 * names live under library/. */
static int parse_docker_name(const char *text, const char *default_host, bool allow_digest,
                             struct image_ref *ref, struct moat_err *err)
{
    char buf[2 * IMAGE_NAME_MAX];
    char *at, *slash, *colon, *name;

    if (strlen(text) >= sizeof(buf))
        return moat_err_set(err, ENAMETOOLONG, "image reference %.80s...: too long", text);
    snprintf(buf, sizeof(buf), "%s", text);
    at = strchr(buf, '@');
    if (at) {
        if (!allow_digest)
            return moat_err_set(err, EINVAL, "image reference %s: a digest is not allowed here",
                                text);
        *at = '\0';
        if (image_digest_parse(at + 1, text, &ref->digest, err) < 0)
            return -1;
        ref->has_digest = true;
    }
    slash = strchr(buf, '/');
    name = buf;
    if (slash && looks_like_host(buf, (size_t)(slash - buf))) {
        *slash = '\0';
        if (!valid_host(buf))
            return moat_err_set(err, EINVAL, "image reference %s: bad registry host \"%s\"", text,
                                buf);
        snprintf(ref->host, sizeof(ref->host), "%s", buf);
        name = slash + 1;
    } else {
        snprintf(ref->host, sizeof(ref->host), "%s", default_host);
    }
    colon = strrchr(name, ':');
    if (colon) {
        *colon = '\0';
        if (!valid_tag(colon + 1))
            return moat_err_set(err, EINVAL,
                                "image reference %s: bad tag \"%s\" (letters, digits, '_', '.', "
                                "'-', at most 128)",
                                text, colon + 1);
        snprintf(ref->tag, sizeof(ref->tag), "%s", colon + 1);
    }
    if (strcmp(ref->host, "docker.io") == 0 && !strchr(name, '/'))
        snprintf(ref->repo, sizeof(ref->repo), "library/%s", name);
    else
        snprintf(ref->repo, sizeof(ref->repo), "%s", name);
    if (!valid_repo(ref->repo))
        return moat_err_set(err, EINVAL,
                            "image reference %s: bad repository \"%s\" (lower-case letters, "
                            "digits and separators)",
                            text, name);
    if (!ref->tag[0] && !ref->has_digest)
        snprintf(ref->tag, sizeof(ref->tag), "latest");
    return 0;
}

/* PATH[:REST]: the path ends at the first ':' as in skopeo. */
static int split_path(const char *what, const char *s, struct image_ref *ref, const char **rest,
                      struct moat_err *err)
{
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);

    if (n == 0)
        return moat_err_set(err, EINVAL, "image reference %s:%s: no path given", what, s);
    if (n >= sizeof(ref->path))
        return moat_err_set(err, ENAMETOOLONG, "image reference %s: path too long", what);
    memcpy(ref->path, s, n);
    ref->path[n] = '\0';
    *rest = colon ? colon + 1 : NULL;
    return 0;
}

static int parse_layout(const char *what, const char *s, struct image_ref *ref,
                        struct moat_err *err)
{
    const char *tag;

    if (split_path(what, s, ref, &tag, err) < 0)
        return -1;
    if (tag && !valid_ref_name(tag))
        return moat_err_set(err, EINVAL, "image reference %s:%s: bad tag \"%s\"", what, s, tag);
    snprintf(ref->tag, sizeof(ref->tag), "%s", tag ? tag : "");
    return 0;
}

/* skopeo's other transports: named here so they get a clear error rather
 * than being read as a registry host. */
static bool unsupported_transport(const char *s)
{
    static const char *const others[] = {
        "dir:", "containers-storage:", "docker-daemon:", "ostree:", "sif:", "tarball:"};

    for (size_t i = 0; i < ARRAY_SIZE(others); i++)
        if (strncmp(s, others[i], strlen(others[i])) == 0)
            return true;
    return false;
}

int image_ref_parse(const char *s, struct image_ref *ref, struct moat_err *err)
{
    static const char oci[] = "oci:", oci_ar[] = "oci-archive:", docker_ar[] = "docker-archive:",
                      docker[] = "docker://";
    const char *rest;

    memset(ref, 0, sizeof(*ref));
    if (!s || !*s)
        return moat_err_set(err, EINVAL, "empty image reference");
    if (strcmp(s, "host") == 0) {
        ref->transport = IMAGE_HOST;
        return 0;
    }
    if (strncmp(s, oci, sizeof(oci) - 1) == 0) {
        ref->transport = IMAGE_OCI;
        return parse_layout("oci", s + sizeof(oci) - 1, ref, err);
    }
    if (strncmp(s, oci_ar, sizeof(oci_ar) - 1) == 0) {
        ref->transport = IMAGE_OCI_ARCHIVE;
        return parse_layout("oci-archive", s + sizeof(oci_ar) - 1, ref, err);
    }
    if (strncmp(s, docker_ar, sizeof(docker_ar) - 1) == 0) {
        ref->transport = IMAGE_DOCKER_ARCHIVE;
        if (split_path("docker-archive", s + sizeof(docker_ar) - 1, ref, &rest, err) < 0)
            return -1;
        return rest ? parse_docker_name(rest, DEFAULT_REGISTRY, false, ref, err) : 0;
    }
    if (strncmp(s, docker, sizeof(docker) - 1) == 0) {
        ref->transport = IMAGE_DOCKER;
        return parse_docker_name(s + sizeof(docker) - 1, image_default_registry(), true, ref, err);
    }
    if (strstr(s, "://") || unsupported_transport(s))
        return moat_err_set(err, EINVAL,
                            "image reference %s: unknown transport (oci:, oci-archive:, "
                            "docker-archive:, docker://, or host)",
                            s);
    ref->transport = IMAGE_DOCKER;
    return parse_docker_name(s, image_default_registry(), true, ref, err);
}

int image_ref_format(const struct image_ref *ref, char *buf, size_t len)
{
    const char *sep = ref->tag[0] ? ":" : "";
    int n;

    switch (ref->transport) {
    case IMAGE_HOST:
        n = snprintf(buf, len, "host");
        break;
    case IMAGE_OCI:
    case IMAGE_OCI_ARCHIVE:
        n = snprintf(buf, len, "%s:%s%s%s", ref->transport == IMAGE_OCI ? "oci" : "oci-archive",
                     ref->path, sep, ref->tag);
        break;
    case IMAGE_DOCKER_ARCHIVE:
        if (ref->repo[0])
            n = snprintf(buf, len, "docker-archive:%s:%s/%s%s%s", ref->path, ref->host, ref->repo,
                         sep, ref->tag);
        else
            n = snprintf(buf, len, "docker-archive:%s", ref->path);
        break;
    default:
        n = snprintf(buf, len, "docker://%s/%s%s%s%s%s", ref->host, ref->repo, sep, ref->tag,
                     ref->has_digest ? "@" : "", ref->has_digest ? ref->digest.str : "");
        break;
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int image_ref_canonical(const struct image_ref *ref, char *buf, size_t len)
{
    struct image_ref abs = *ref;
    char cwd[PATH_MAX], real[PATH_MAX];

    if (ref->transport == IMAGE_HOST || ref->transport == IMAGE_DOCKER)
        return image_ref_format(ref, buf, len);
    if (realpath(ref->path, real)) {
        snprintf(abs.path, sizeof(abs.path), "%s", real);
    } else if (ref->path[0] != '/' && getcwd(cwd, sizeof(cwd))) {
        if ((size_t)snprintf(abs.path, sizeof(abs.path), "%s/%s", cwd, ref->path) >=
            sizeof(abs.path))
            return -1;
    }
    return image_ref_format(&abs, buf, len);
}
