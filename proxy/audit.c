/* The audit log: one JSON object per line, each with "prev", the SHA-256 of the
 * line before it (64 zeros for the first), so a removed or edited line breaks
 * the chain. Secrets never reach it: records hold names, ports and decisions. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/cleanup.h"
#include "lib/fd.h"
#include "lib/log.h"
#include "proxy/internal.h"

#define AUDIT_LINE_MAX 2048
#define AUDIT_TAIL 8192 /* enough to hold the last line */

static void digest_hex(const char *line, size_t len, char hex[2 * SHA256_DIGEST_LEN + 1])
{
    struct sha256 s;
    unsigned char d[SHA256_DIGEST_LEN];

    sha256_init(&s);
    sha256_update(&s, line, len);
    sha256_final(&s, d);
    sha256_hex(d, hex);
}

/* The chain goes on from the last line already in the file. */
static int chain_from_tail(struct audit *a, struct moat_err *err)
{
    char buf[AUDIT_TAIL + 1];
    struct stat st;

    memset(a->prev, '0', 2 * SHA256_DIGEST_LEN);
    a->prev[2 * SHA256_DIGEST_LEN] = '\0';
    if (fstat(a->fd, &st) < 0)
        return moat_err_sys(err, "audit log");
    off_t from = st.st_size > AUDIT_TAIL ? st.st_size - AUDIT_TAIL : 0;
    ssize_t n = pread(a->fd, buf, (size_t)(st.st_size - from), from);
    if (n < 0)
        return moat_err_sys(err, "read the audit log");
    /* Only whole lines count: the last one ends with the file's last newline. */
    while (n > 0 && buf[n - 1] != '\n')
        n--;
    if (n == 0)
        return 0;
    buf[--n] = '\0';
    char *start = memrchr(buf, '\n', (size_t)n);
    start = start ? start + 1 : buf;
    digest_hex(start, (size_t)(buf + n - start), a->prev);
    return 0;
}

int audit_open(struct audit *a, int fd, const char *run, struct moat_err *err)
{
    a->fd = fd;
    snprintf(a->run, sizeof(a->run), "%s", run ? run : "");
    if (fd < 0) {
        memset(a->prev, '0', 2 * SHA256_DIGEST_LEN);
        a->prev[2 * SHA256_DIGEST_LEN] = '\0';
        return 0;
    }
    return chain_from_tail(a, err);
}

void audit_close(struct audit *a)
{
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
}

/* S as a JSON string body into OUT (room for LEN); controls as \u00XX. */
static void json_escape(const char *s, char *out, size_t len)
{
    size_t o = 0;

    for (; *s && o + 7 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, len - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

static size_t add_str(char *line, size_t o, const char *key, const char *val)
{
    char esc[600];

    if (!val || o >= AUDIT_LINE_MAX)
        return o;
    json_escape(val, esc, sizeof(esc));
    return o + (size_t)snprintf(line + o, AUDIT_LINE_MAX - o, ",\"%s\":\"%s\"", key, esc);
}

void audit_write(struct audit *a, const struct audit_event *ev)
{
    static bool warned;
    char line[AUDIT_LINE_MAX + 2], ts[40];
    struct timespec now;
    struct tm tm;
    size_t o;

    if (a->fd < 0)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    o = (size_t)snprintf(line, AUDIT_LINE_MAX, "{\"time\":\"%s.%03ldZ\"", ts,
                         now.tv_nsec / 1000000);
    o = add_str(line, o, "run", a->run);
    o = add_str(line, o, "kind", ev->kind);
    o = add_str(line, o, "decision", ev->decision);
    o = add_str(line, o, "host", ev->name);
    o = add_str(line, o, "addr", ev->addr);
    if (ev->port && o < AUDIT_LINE_MAX)
        o += (size_t)snprintf(line + o, AUDIT_LINE_MAX - o, ",\"port\":%u", ev->port);
    o = add_str(line, o, "method", ev->method);
    o = add_str(line, o, "path", ev->path);
    if (ev->status && o < AUDIT_LINE_MAX)
        o += (size_t)snprintf(line + o, AUDIT_LINE_MAX - o, ",\"status\":%d", ev->status);
    if (ev->method && o < AUDIT_LINE_MAX)
        o +=
            (size_t)snprintf(line + o, AUDIT_LINE_MAX - o,
                             ",\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64 ",\"ms\":%" PRIu64,
                             ev->bytes_up, ev->bytes_down, ev->duration_ms);
    o = add_str(line, o, "grant", ev->grant);
    o = add_str(line, o, "reason", ev->reason);
    if (o >= AUDIT_LINE_MAX - 80)
        o = AUDIT_LINE_MAX - 80; /* cannot happen with the field caps above; stay bounded */
    o += (size_t)snprintf(line + o, AUDIT_LINE_MAX + 2 - o, ",\"prev\":\"%s\"}", a->prev);
    digest_hex(line, o, a->prev);
    line[o++] = '\n';
    if (write_all(a->fd, line, o) < 0 && !warned) {
        warned = true;
        log_warn("audit log: write failed: %s", strerror(errno));
    }
}

/* The value of "prev" in LINE (the last field audit_write writes), or NULL. */
static const char *line_prev(const char *line, size_t len)
{
    static const char key[] = ",\"prev\":\"";
    size_t tail = sizeof(key) - 1 + 2 * SHA256_DIGEST_LEN + 2; /* key, digest, "} */

    if (len < tail || line[0] != '{' || memcmp(line + len - 2, "\"}", 2) != 0)
        return NULL;
    const char *p = line + len - tail;
    if (memcmp(p, key, sizeof(key) - 1) != 0)
        return NULL;
    p += sizeof(key) - 1;
    for (int i = 0; i < 2 * SHA256_DIGEST_LEN; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return NULL;
    return p;
}

long proxy_audit_verify(int fd, const char *name, struct moat_err *err)
{
    char prev[2 * SHA256_DIGEST_LEN + 1];
    _cleanup_fclose_ FILE *f = NULL;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    long n = 0;
    ssize_t len;
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);

    if (dupfd < 0 || !(f = fdopen(dupfd, "r"))) {
        if (dupfd >= 0)
            close(dupfd);
        return moat_err_sys(err, "%s", name);
    }
    lseek(dupfd, 0, SEEK_SET); /* from the first line, whoever read it before */
    memset(prev, '0', 2 * SHA256_DIGEST_LEN);
    prev[2 * SHA256_DIGEST_LEN] = '\0';
    while ((len = getline(&line, &cap, f)) > 0) {
        n++;
        if (line[len - 1] != '\n')
            return moat_err_set(err, 0, "%s: line %ld: cut short (no newline)", name, n);
        line[--len] = '\0';
        const char *p = line_prev(line, (size_t)len);
        if (!p)
            return moat_err_set(err, 0, "%s: line %ld: not an audit record", name, n);
        if (memcmp(p, prev, 2 * SHA256_DIGEST_LEN) != 0)
            return n == 1 ? moat_err_set(err, 0,
                                         "%s: line 1: the chain does not start here (lines "
                                         "before it were removed)",
                                         name)
                          : moat_err_set(err, 0,
                                         "%s: line %ld: chain broken: line %ld was changed, or "
                                         "lines after it were removed",
                                         name, n, n - 1);
        digest_hex(line, (size_t)len, prev);
    }
    if (ferror(f))
        return moat_err_sys(err, "read %s", name);
    return n;
}
