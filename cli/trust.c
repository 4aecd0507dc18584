/* The sandbox trusts moat's CA, so that intercepted TLS verifies inside it. */
#include "cli/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "proxy/ca.h"

#define HOST_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define BUNDLE_MAX (16 << 20)

/* MOAT_HOME/ca/ca.pem, the CA made first when there is none. */
static int read_ca_pem(const char *dir, char **pem, size_t *len, struct moat_err *err)
{
    _cleanup_close_ int d = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (d < 0)
        return moat_err_sys(err, "open %s", dir);
    if (faccessat(d, "ca.pem", R_OK, AT_SYMLINK_NOFOLLOW) < 0 ||
        faccessat(d, "ca.key", R_OK, AT_SYMLINK_NOFOLLOW) < 0) {
        struct proxy_ca ca;
        int r = ca_open(dir, &ca, err); /* creates it, under its lock */
        ca_close(&ca);
        if (r < 0)
            return -1;
    }
    return read_file_at(d, "ca.pem", 64 * 1024, pem, len, err);
}

int run_trust_prepare(struct run_trust *t, struct moat_err *err)
{
    _cleanup_free_ char *pem = NULL, *host = NULL;
    size_t pem_len = 0, host_len = 0;

    memset(t, 0, sizeof(*t));
    if (moat_home_sub("ca", t->ca_dir, sizeof(t->ca_dir), err) < 0 ||
        read_ca_pem(t->ca_dir, &pem, &pem_len, err) < 0)
        return -1;
    _cleanup_close_ int hb = open(HOST_BUNDLE, O_RDONLY | O_CLOEXEC);
    if (hb >= 0 && read_fd_all(hb, HOST_BUNDLE, BUNDLE_MAX, &host, &host_len, err) < 0)
        return -1;
    t->bundle = malloc(host_len + pem_len + 2);
    if (!t->bundle)
        return moat_err_sys(err, "trust bundle");
    memcpy(t->bundle, host ? host : "", host_len);
    size_t n = host_len;
    if (n && t->bundle[n - 1] != '\n')
        t->bundle[n++] = '\n';
    memcpy(t->bundle + n, pem, pem_len);
    t->bundle[n + pem_len] = '\0';
    t->ca_pem = steal_ptr(&pem);
    return 0;
}

void run_trust_free(struct run_trust *t)
{
    free(t->bundle);
    free(t->ca_pem);
    t->bundle = t->ca_pem = NULL;
}
