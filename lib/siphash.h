/* SipHash-2-4: a keyed hash for tables whose keys come from untrusted input
 * (DNS names from the sandbox, paths from an image layer), so the input cannot
 * pick colliding buckets. */
#ifndef MOAT_LIB_SIPHASH_H
#define MOAT_LIB_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of LEN bytes at DATA under the 128-bit KEY. */
uint64_t siphash(const uint64_t key[2], const void *data, size_t len);

#endif
