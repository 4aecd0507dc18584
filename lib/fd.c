#include "lib/fd.h"

#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/cleanup.h"

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int read_fd_all(int fd, const char *name, size_t max, char **out, size_t *out_len,
                struct moat_err *err)
{
    _cleanup_free_ char *buf = NULL;
    size_t cap = 4096, len = 0;

    for (;;) {
        if (len + 1 >= cap || !buf) {
            if (buf)
                cap *= 2;
            char *nbuf = realloc(buf, cap);
            if (!nbuf)
                return moat_err_set(err, ENOMEM, "read %s", name);
            buf = nbuf;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return moat_err_sys(err, "read %s", name);
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            return moat_err_set(err, EFBIG, "read %s: larger than %zu bytes", name, max);
    }
    buf[len] = '\0';
    *out = steal_ptr(&buf);
    if (out_len)
        *out_len = len;
    return 0;
}

int read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *out_len,
                 struct moat_err *err)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0)
        return moat_err_sys(err, "open %s", path);
    return read_fd_all(fd, path, max, out, out_len, err);
}

int write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                  struct moat_err *err)
{
    /* O_NOFOLLOW: a symlink planted at NAME must not redirect the write. */
    _cleanup_close_ int fd =
        openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);

    if (fd < 0)
        return moat_err_sys(err, "create %s", name);
    if (write_all(fd, data, len) < 0)
        return moat_err_sys(err, "write %s", name);
    return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                         struct moat_err *err)
{
    char tmp[PATH_MAX];

    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", name, (int)getpid());
    if (write_file_at(dirfd, tmp, data, len, mode, err) < 0)
        return -1;
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        int saved = errno;
        unlinkat(dirfd, tmp, 0);
        return moat_err_set(err, saved, "rename %s", name);
    }
    return 0;
}

int mkdir_p(const char *path, mode_t mode, struct moat_err *err)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return moat_err_set(err, ENAMETOOLONG, "mkdir %s", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return moat_err_sys(err, "mkdir %s", buf);
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return moat_err_sys(err, "mkdir %s", buf);
    return 0;
}

int moat_home(char *buf, size_t len, struct moat_err *err)
{
    const char *env = getenv("MOAT_HOME");
    const char *home = getenv("HOME");
    int n;

    if (env && *env) {
        n = snprintf(buf, len, "%s", env);
    } else if (geteuid() == 0) {
        /* root's home is closed to the workspace owner who sets a sandbox up, and
         * system state lives under /var/lib anyway (as podman's does). */
        n = snprintf(buf, len, "/var/lib/moat");
    } else {
        if (!home || !*home) {
            struct passwd *pw = getpwuid(geteuid());
            if (!pw)
                return moat_err_set(err, 0,
                                    "cannot find the home directory of uid %d; set MOAT_HOME",
                                    (int)geteuid());
            home = pw->pw_dir;
        }
        n = snprintf(buf, len, "%s/.moat", home);
    }
    if (n < 0 || (size_t)n >= len)
        return moat_err_set(err, ENAMETOOLONG, "MOAT_HOME");
    if (buf[0] != '/')
        return moat_err_set(err, EINVAL, "MOAT_HOME %s: not an absolute path", buf);
    return mkdir_p(buf, 0700, err);
}

int moat_home_sub(const char *sub, char *buf, size_t len, struct moat_err *err)
{
    char home[PATH_MAX];
    int n;

    if (moat_home(home, sizeof(home), err) < 0)
        return -1;
    n = snprintf(buf, len, "%s/%s", home, sub);
    if (n < 0 || (size_t)n >= len)
        return moat_err_set(err, ENAMETOOLONG, "%s/%s", home, sub);
    return mkdir_p(buf, 0700, err);
}

int moat_home_open_way(const char *path, struct moat_err *err)
{
    char home[PATH_MAX], buf[PATH_MAX];
    size_t n;
    struct stat st;

    if (geteuid() != 0)
        return 0;
    if (moat_home(home, sizeof(home), err) < 0)
        return -1;
    n = strlen(home);
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = strchr(buf + 1, '/');; p = strchr(p + 1, '/')) {
        if (p)
            *p = '\0';
        if (lstat(buf, &st) < 0)
            return moat_err_sys(err, "stat %s", buf);
        bool ours = strlen(buf) >= n && strncmp(buf, home, n) == 0;
        if (S_ISDIR(st.st_mode) && !(st.st_mode & S_IXOTH) && !ours)
            return moat_err_set(err, EACCES,
                                "as root: %s is not searchable by the workspace owner, who "
                                "sets up the sandbox; put MOAT_HOME elsewhere (e.g. "
                                "MOAT_HOME=/var/lib/moat)",
                                buf);
        if (S_ISDIR(st.st_mode) && ours && (st.st_mode & 0011) != 0011 &&
            chmod(buf, (st.st_mode & 07777) | 0011) < 0)
            return moat_err_sys(err, "chmod %s", buf);
        if (!p)
            return 0;
        *p = '/';
    }
}
