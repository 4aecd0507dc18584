/* SHA-256 (FIPS 180-4), small and dependency-free: cache keys must not cost a
 * crypto library's start-up on every run. */
#ifndef MOAT_LIB_SHA256_H
#define MOAT_LIB_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32

struct sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    unsigned char buf[64];
    size_t fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, unsigned char out[SHA256_DIGEST_LEN]);

/* The compression function in use: "sha-ni" (x86 SHA extensions, chosen by
 * CPUID) or "generic". sha256_use_generic(true) pins the plain C one (tests
 * check both against the same vectors). */
const char *sha256_impl(void);
void sha256_use_generic(bool on);

/* Lower-case hex of OUT into HEX (65 bytes). */
void sha256_hex(const unsigned char digest[SHA256_DIGEST_LEN], char hex[65]);

#endif
