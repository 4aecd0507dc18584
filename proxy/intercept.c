/* TLS interception on the sandbox's side: the ClientHello is read (peeked, so the
 * TLS library later reads it from the socket itself) before anything else happens,
 * its server name must be the name the connection stands for and pass the policy,
 * and only then is a leaf forged and the session handed to the HTTP path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/cleanup.h"
#include "lib/log.h"
#include "proxy/clienthello.h"
#include "proxy/internal.h"

#define HELLO_PEEK (TLS_HELLO_MAX + 1024) /* the message and its record headers */

int proxy_tls_ready(struct proxy *p, struct moat_err *err)
{
    if (p->tls_state > 0)
        return 0;
    if (p->tls_state < 0 || !p->ca_dir[0])
        return moat_err_set(err, 0, "TLS interception is not available in this run");
    if (ca_open(p->ca_dir, &p->ca, err) < 0 ||
        tls_ctx_init(&p->tls, (const char *const *)p->upstream_cas, p->cfg.n_upstream_cas, err) <
            0) {
        p->tls_state = -1;
        log_warn("proxy: TLS interception: %s", err->msg);
        return -1;
    }
    p->tls_state = 1;
    return 0;
}

/* The ClientHello in BUF is complete: judge it and start serving. */
static void intercept(struct proxy *p, struct conn *c, const struct tls_hello *hello)
{
    struct moat_err err = {0};
    char reason[MOAT_ERR_MSG_MAX + 64];

    if (!hello->has_sni) {
        conn_refuse(p, c, "TLS without a server name");
        return;
    }
    /* the forged certificate, the policy and the injection all go by one name */
    if (strcmp(hello->sni, c->name) != 0) {
        snprintf(reason, sizeof(reason), "TLS server name %s is not %s, the host dialled",
                 hello->sni, c->name);
        conn_refuse(p, c, reason);
        return;
    }
    if (!policy_name_allowed(&p->cfg, c->name)) {
        conn_refuse(p, c, "denied by the network policy");
        return;
    }
    if (proxy_tls_ready(p, &err) < 0) {
        conn_refuse(p, c, err.msg);
        return;
    }
    X509 *leaf = ca_leaf(&p->ca, c->name, &err);
    SSL *ssl =
        leaf ? tls_accept_new(&p->tls, &p->ca, leaf, c->client, hello->psk_modes, &err) : NULL;
    if (leaf)
        ossl.X509_free(leaf);
    if (!ssl) {
        conn_refuse(p, c, err.msg);
        return;
    }
    if (http_start_tls(p, c, ssl) < 0)
        conn_refuse(p, c, "out of memory");
}

void intercept_peek(struct proxy *p, struct conn *c)
{
    _cleanup_free_ uint8_t *buf = malloc(HELLO_PEEK);
    _cleanup_free_ struct tls_hello *hello = malloc(sizeof(*hello));
    struct moat_err err = {0};

    if (!buf || !hello) {
        conn_refuse(p, c, "out of memory");
        return;
    }
    ssize_t n = recv(c->client, buf, HELLO_PEEK, MSG_PEEK | MSG_DONTWAIT);
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN)
            conn_close(p, c);
        return;
    }
    int r = tls_hello_parse(buf, (size_t)n, hello, &err);
    if (r < 0) {
        conn_refuse(p, c, err.msg);
    } else if (r == 0 && n == HELLO_PEEK) {
        conn_refuse(p, c, "ClientHello too large");
    } else if (r == 0) {
        c->hello_pending = true; /* edge-triggered: woken when more comes */
    } else {
        c->hello_pending = false;
        intercept(p, c, hello);
    }
}
