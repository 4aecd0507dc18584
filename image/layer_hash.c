/* The layer's two digests, computed on a second thread: hashing every byte of a
 * layer twice costs as much CPU as decompressing it, and the writer thread has
 * the filesystem to wait for. Bytes are copied into a ring of slots (a copy
 * costs a tenth of hashing them) and hashed in order by one worker. Small
 * layers never start the thread. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "image/layer_int.h"

#define SLOTS 8
#define SLOT_SIZE (512 * 1024)
#define THREAD_AFTER (4 << 20) /* bytes hashed inline before the worker starts */

struct slot {
    struct sha256 *sha;
    const unsigned char *ref; /* hash LEN bytes there, not DATA (layer_hash_ref) */
    size_t len;
    unsigned char data[SLOT_SIZE];
};

struct layer_hasher {
    pthread_mutex_t lock;
    pthread_cond_t filled, emptied;
    pthread_t thread;
    bool running, failed, done;
    uint64_t inline_bytes;
    size_t head, tail, count; /* the ring: producer fills head, worker empties tail */
    struct slot *slots;
};

static void *worker(void *arg)
{
    struct layer_hasher *h = arg;

    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (h->count == 0 && !h->done)
            pthread_cond_wait(&h->filled, &h->lock);
        if (h->count == 0)
            break;
        struct slot *s = &h->slots[h->tail];
        pthread_mutex_unlock(&h->lock);
        sha256_update(s->sha, s->ref ? s->ref : s->data, s->len);
        pthread_mutex_lock(&h->lock);
        h->tail = (h->tail + 1) % SLOTS;
        h->count--;
        pthread_cond_signal(&h->emptied);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

struct layer_hasher *layer_hasher_new(void)
{
    struct layer_hasher *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->filled, NULL);
    pthread_cond_init(&h->emptied, NULL);
    return h;
}

/* Start the worker; false (hash inline from now on) when it cannot be had. */
static bool start(struct layer_hasher *h)
{
    if (!(h->slots = malloc(SLOTS * sizeof(*h->slots))))
        return false;
    if (pthread_create(&h->thread, NULL, worker, h) != 0) {
        free(h->slots);
        h->slots = NULL;
        return false;
    }
    h->running = true;
    return true;
}

/* The next free slot at head, the producer's alone until queue() counts it. */
static struct slot *slot_free(struct layer_hasher *h)
{
    pthread_mutex_lock(&h->lock);
    while (h->count == SLOTS)
        pthread_cond_wait(&h->emptied, &h->lock);
    pthread_mutex_unlock(&h->lock);
    return &h->slots[h->head];
}

static void queue(struct layer_hasher *h)
{
    pthread_mutex_lock(&h->lock);
    h->head = (h->head + 1) % SLOTS;
    h->count++;
    pthread_cond_signal(&h->filled);
    pthread_mutex_unlock(&h->lock);
}

/* Hash inline until THREAD_AFTER bytes were; true when the worker has them. */
static bool worker_takes(struct layer_hasher *h, size_t len)
{
    if (!h->running && !h->failed && h->inline_bytes + len > THREAD_AFTER)
        h->failed = !start(h);
    if (!h->running)
        h->inline_bytes += len;
    return h->running;
}

void layer_hash(struct layer_hasher *h, struct sha256 *sha, const void *data, size_t len)
{
    const unsigned char *p = data;

    if (!worker_takes(h, len)) {
        sha256_update(sha, data, len);
        return;
    }
    while (len > 0) {
        size_t n = len < SLOT_SIZE ? len : SLOT_SIZE;
        struct slot *s = slot_free(h);

        s->sha = sha;
        s->ref = NULL;
        s->len = n;
        memcpy(s->data, p, n);
        queue(h);
        p += n;
        len -= n;
    }
}

void layer_hash_ref(struct layer_hasher *h, struct sha256 *sha, const void *data, size_t len)
{
    if (!worker_takes(h, len)) {
        sha256_update(sha, data, len);
        return;
    }
    struct slot *s = slot_free(h);
    s->sha = sha;
    s->ref = data;
    s->len = len;
    queue(h);
}

void layer_hasher_free(struct layer_hasher *h)
{
    if (!h)
        return;
    if (h->running) {
        pthread_mutex_lock(&h->lock);
        h->done = true;
        pthread_cond_signal(&h->filled);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
    }
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->filled);
    pthread_cond_destroy(&h->emptied);
    free(h->slots);
    free(h);
}
