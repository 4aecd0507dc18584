/* oci:DIR — an OCI image layout directory: oci-layout, index.json and
 * blobs/sha256/HEX, every file opened relative to the layout's fd. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image/internal.h"
#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/json.h"

#define OCI_LAYOUT_MAX 4096

/* Open NAME under DIRFD for reading as a regular file. */
static int open_in_layout(int dirfd, const char *name, const char *layout, int *out,
                          struct moat_err *err)
{
    /* RESOLVE_IN_ROOT: a symlink inside the layout cannot lead a read out of it. */
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    _cleanup_close_ int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    struct stat st;

    if (fd < 0)
        return moat_err_sys(err, "%s: open %s", layout, name);
    if (fstat(fd, &st) < 0)
        return moat_err_sys(err, "%s: stat %s", layout, name);
    /* A FIFO or device in place of a blob would hang or feed endless data. */
    if (!S_ISREG(st.st_mode))
        return moat_err_set(err, EINVAL, "%s: %s is not a regular file", layout, name);
    *out = steal_fd(&fd);
    return 0;
}

static int check_layout_version(int dirfd, const char *layout, struct moat_err *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *text = NULL;
    _cleanup_json_ yajl_val root = NULL;
    size_t len;
    bool bad = false;
    const char *version;

    if (open_in_layout(dirfd, "oci-layout", layout, &fd, err) < 0 ||
        read_fd_all(fd, "oci-layout", OCI_LAYOUT_MAX, &text, &len, err) < 0 ||
        json_parse(text, len, OCI_LAYOUT_MAX, 4, "oci-layout", &root, err) < 0)
        return moat_err_prefix(err, "%s", layout);
    version = json_get_string(root, "imageLayoutVersion", &bad);
    if (!version || bad)
        return moat_err_set(err, EINVAL, "%s: oci-layout: no imageLayoutVersion", layout);
    if (strcmp(version, "1.0.0") != 0)
        return moat_err_set(err, ENOTSUP, "%s: oci-layout: imageLayoutVersion %.32s (want 1.0.0)",
                            layout, version);
    return 0;
}

static int oci_top(struct image_source *src, char **doc, size_t *len, char media_type[128],
                   struct moat_err *err)
{
    _cleanup_close_ int fd = -1;

    snprintf(media_type, 128, "application/vnd.oci.image.index.v1+json");
    if (open_in_layout(src->dir_fd, "index.json", src->name, &fd, err) < 0)
        return -1;
    return read_fd_all(fd, "index.json", IMAGE_MANIFEST_MAX, doc, len, err) < 0
               ? moat_err_prefix(err, "%s", src->name)
               : 0;
}

static int oci_open_blob(struct image_source *src, const struct image_desc *d, int *fd,
                         struct moat_err *err)
{
    char name[96];

    /* The digest was checked to be sha256 + 64 hex digits when parsed. */
    snprintf(name, sizeof(name), "blobs/sha256/%s", image_digest_hex(&d->digest));
    return open_in_layout(src->dir_fd, name, src->name, fd, err);
}

static void oci_close(struct image_source *src)
{
    if (src->dir_fd >= 0)
        close(src->dir_fd);
    src->dir_fd = -1;
}

static const struct image_source_ops oci_ops = {
    .top = oci_top,
    .manifest = NULL,
    .open_blob = oci_open_blob,
    .close = oci_close,
};

int image_source_oci(const struct image_ref *ref, struct image_source *src, struct moat_err *err)
{
    _cleanup_close_ int fd = open(ref->path, O_PATH | O_DIRECTORY | O_CLOEXEC);

    memset(src, 0, sizeof(*src));
    src->dir_fd = -1;
    snprintf(src->name, sizeof(src->name), "oci:%s", ref->path);
    if (fd < 0)
        return moat_err_sys(err, "%s: open %s", src->name, ref->path);
    if (check_layout_version(fd, src->name, err) < 0)
        return -1;
    src->ops = &oci_ops;
    src->ref = ref;
    src->select_tag = ref->tag[0] ? ref->tag : NULL;
    src->dir_fd = steal_fd(&fd);
    return 0;
}
