/* fd and path helpers shared by every subsystem. */
#ifndef MOAT_LIB_FD_H
#define MOAT_LIB_FD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/err.h"

/* Write all LEN bytes, retrying on EINTR and short writes; 0 or -1 with errno. */
int write_all(int fd, const void *buf, size_t len);

/* Read until EOF or LEN bytes; returns the count or -1 with errno. */
ssize_t read_all(int fd, void *buf, size_t len);

/* Read the whole of FD into a NUL-terminated malloc'd buffer of at most MAX bytes.
 * NAME is what errors talk about. */
int read_fd_all(int fd, const char *name, size_t max, char **out, size_t *out_len,
                struct moat_err *err);

/* Read the file PATH (relative to DIRFD) into a NUL-terminated malloc'd buffer. */
int read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *out_len,
                 struct moat_err *err);

/* Create (or truncate) NAME under DIRFD with MODE and write DATA; never follows a
 * symlink at NAME. */
int write_file_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                  struct moat_err *err);

/* Write DATA to NAME under DIRFD atomically: a temporary file, then rename. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                         struct moat_err *err);

/* mkdir -p for a host path; every directory created gets MODE. */
int mkdir_p(const char *path, mode_t mode, struct moat_err *err);

/* The directory every file moat writes lives under: $MOAT_HOME, else ~/.moat
 * (/var/lib/moat for root). Created 0700 when missing. */
int moat_home(char *buf, size_t len, struct moat_err *err);

/* moat_home()/SUB, created 0700 when missing. */
int moat_home_sub(const char *sub, char *buf, size_t len, struct moat_err *err);

/* As root, let the sandbox's setup process, which runs as the workspace owner and
 * opens PATH by name, search every directory on the way: MOAT_HOME's own become
 * 0711 (through, not list); any other that does not allow it is an error. Rootless,
 * PATH is the caller's own: nothing to do. */
int moat_home_open_way(const char *path, struct moat_err *err);

#endif
