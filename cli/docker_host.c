/* docker:host: the host's Docker socket bound into the sandbox, with the group
 * that opens it. Docker is used for nothing else. Everything is checked before
 * the sandbox starts, so a missing daemon or a missing permission is one clear
 * line, not a failing `docker` inside. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/docker_host.h"

static const char *user_name(void)
{
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_name : "$USER";
}

int docker_host_prepare(struct docker_host *d, struct moat_err *err)
{
    const char *env = getenv("DOCKER_HOST");
    struct stat st;

    memset(d, 0, sizeof(*d));
    if (env && *env && strncmp(env, "unix://", 7) != 0)
        return moat_err_set(err, 0,
                            "docker:host: DOCKER_HOST=%s: only a unix socket can be passed "
                            "into the sandbox",
                            env);
    snprintf(d->path, sizeof(d->path), "%s", env && *env ? env + 7 : DOCKER_HOST_DEFAULT);
    if (stat(d->path, &st) < 0)
        return moat_err_sys(err,
                            "docker:host: %s (is dockerd running? see moat doctor "
                            "--docker-host)",
                            d->path);
    if (!S_ISSOCK(st.st_mode))
        return moat_err_set(err, 0, "docker:host: %s is not a socket", d->path);
    if (geteuid() != 0) {
        /* The command keeps our groups: the one that opens the socket among them. */
        if (access(d->path, R_OK | W_OK) < 0)
            return moat_err_sys(err,
                                "docker:host: %s (not in its group %u? sudo usermod -aG docker "
                                "%s, then log in again)",
                                d->path, (unsigned)st.st_gid, user_name());
        d->keep_groups = true;
        return 0;
    }
    /* As root, the sandbox gets exactly the socket's group, and never root's. */
    if (st.st_gid == 0)
        return moat_err_set(err, 0,
                            "docker:host: %s belongs to group root, which moat never gives "
                            "a sandbox (start dockerd with -G docker)",
                            d->path);
    if ((st.st_mode & 060) != 060)
        return moat_err_set(err, 0, "docker:host: %s is not read-write for its group %u", d->path,
                            (unsigned)st.st_gid);
    d->gid = st.st_gid;
    return 0;
}
