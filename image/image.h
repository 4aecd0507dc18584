/* Images: what the sandbox's root filesystem is made of. For now the `host`
 * image: the host's system directories read-only, with generated /etc files. */
#ifndef MOAT_IMAGE_H
#define MOAT_IMAGE_H

#include <limits.h>

#include "runtime/runtime.h"

#define IMAGE_HOST_MAX_MOUNTS 16
#define IMAGE_ETC_FILES 5

struct image_host {
    struct rt_mount mounts[IMAGE_HOST_MAX_MOUNTS];
    size_t n_mounts;
    char links[IMAGE_HOST_MAX_MOUNTS][PATH_MAX]; /* symlink targets kept as on the host */
};

/* The `host` image: /usr, /bin, /sbin, /lib* (those that exist; symlinks stay
 * symlinks) and /etc, all read-only. */
int image_host_layout(struct image_host *h, struct moat_err *err);

struct image_etc {
    struct rt_file files[IMAGE_ETC_FILES];
    char passwd[512], group[256], hosts[512], hostname[128], resolv[128];
};

/* passwd, group, hosts, hostname and resolv.conf for a sandbox named HOSTNAME;
 * resolv.conf names NAMESERVER, or none when it is NULL (no network). */
void image_etc_generate(struct image_etc *etc, const char *hostname, const char *nameserver);

#endif
