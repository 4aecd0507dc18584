/* bench/layer_apply BLOB DIR: apply one layer blob onto DIR (made when missing) with
 * layer_apply(), digests included, and print what it took. bench/layer runs it
 * beside bsdtar -xpf and the decompression floor. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "image/layer.h"
#include "lib/cleanup.h"

int main(int argc, char **argv)
{
    struct layer_opts opts = {0};
    struct layer_result res;
    struct moat_err err = {0};
    struct timespec t0, t1;
    char buf[MOAT_ERR_MSG_MAX + 64], hex[65];

    if (argc != 3) {
        fprintf(stderr, "usage: %s BLOB DIR\n", argv[0]);
        return 2;
    }
    mkdir(argv[2], 0755);
    _cleanup_close_ int blob = open(argv[1], O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int root = open(argv[2], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (blob < 0 || root < 0) {
        perror(blob < 0 ? argv[1] : argv[2]);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (layer_apply(root, blob, &opts, &res, &err) < 0) {
        fprintf(stderr, "layer_apply: %s\n", moat_err_str(&err, buf, sizeof(buf)));
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sha256_hex(res.diff_id, hex);
    printf("%.3f s  %llu entries  %llu -> %llu bytes  sha256 %s  diff_id sha256:%s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           (unsigned long long)res.entries, (unsigned long long)res.blob_bytes,
           (unsigned long long)res.tar_bytes, sha256_impl(), hex);
    return 0;
}
