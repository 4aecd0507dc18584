/* Internal to image/: libarchive, read side only, loaded on first use
 * (lib/dl.h says why it is not linked). Call archive_lib_load() once before
 * using `la`; then la.archive_read_new() and friends behave exactly as
 * libarchive's own functions. Add a function by adding one line to
 * ARCHIVE_FUNCS. */
#ifndef MOAT_IMAGE_ARCHIVE_H
#define MOAT_IMAGE_ARCHIVE_H

#include <archive.h>
#include <archive_entry.h>

#include "lib/err.h"

#define ARCHIVE_SONAME "libarchive.so.13"

#define ARCHIVE_FUNCS(X)                                                                           \
    X(archive_read_new)                                                                            \
    X(archive_read_free)                                                                           \
    X(archive_read_support_filter_all)                                                             \
    X(archive_read_support_filter_gzip)                                                            \
    X(archive_read_support_filter_zstd)                                                            \
    X(archive_read_support_filter_none)                                                            \
    X(archive_read_support_format_tar)                                                             \
    X(archive_read_support_format_raw)                                                             \
    X(archive_read_support_format_empty)                                                           \
    X(archive_read_set_options)                                                                    \
    X(archive_read_open_fd)                                                                        \
    X(archive_read_open2)                                                                          \
    X(archive_read_next_header)                                                                    \
    X(archive_read_next_header2)                                                                   \
    X(archive_read_data)                                                                           \
    X(archive_read_data_block)                                                                     \
    X(archive_read_data_skip)                                                                      \
    X(archive_filter_count)                                                                        \
    X(archive_filter_code)                                                                         \
    X(archive_filter_bytes)                                                                        \
    X(archive_errno)                                                                               \
    X(archive_error_string)                                                                        \
    X(archive_entry_new)                                                                           \
    X(archive_entry_free)                                                                          \
    X(archive_entry_clear)                                                                         \
    X(archive_entry_pathname)                                                                      \
    X(archive_entry_hardlink)                                                                      \
    X(archive_entry_symlink)                                                                       \
    X(archive_entry_filetype)                                                                      \
    X(archive_entry_mode)                                                                          \
    X(archive_entry_perm)                                                                          \
    X(archive_entry_uid)                                                                           \
    X(archive_entry_gid)                                                                           \
    X(archive_entry_size)                                                                          \
    X(archive_entry_size_is_set)                                                                   \
    X(archive_entry_mtime)                                                                         \
    X(archive_entry_mtime_nsec)                                                                    \
    X(archive_entry_mtime_is_set)                                                                  \
    X(archive_entry_atime)                                                                         \
    X(archive_entry_atime_nsec)                                                                    \
    X(archive_entry_atime_is_set)                                                                  \
    X(archive_entry_rdevmajor)                                                                     \
    X(archive_entry_rdevminor)                                                                     \
    X(archive_entry_xattr_count)                                                                   \
    X(archive_entry_xattr_reset)                                                                   \
    X(archive_entry_xattr_next)

struct archive_lib {
#define ARCHIVE_FN_FIELD(fn) __typeof__(fn) *fn;
    ARCHIVE_FUNCS(ARCHIVE_FN_FIELD)
#undef ARCHIVE_FN_FIELD
};

extern struct archive_lib la;

/* Load libarchive and resolve the table; cheap after the first call. */
int archive_lib_load(struct moat_err *err);

#endif
