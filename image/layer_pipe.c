/* Decompression ahead of the writer: a thread has the layer's tar stream
 * decompressed into a ring of slots, while the writer parses and writes
 * entries. On two cores, inflating and writing then overlap instead of adding
 * up. The fill function writes straight into a slot (zlib inflates there); the
 * writer gets the slots in order, one at a time. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "image/layer_int.h"

#define PIPE_SLOTS 8
#define PIPE_SLOT_SIZE (256 * 1024)

struct pipe_slot {
    ssize_t len; /* bytes; 0: end of stream; -1: the fill function failed */
    unsigned char data[PIPE_SLOT_SIZE];
};

struct layer_pipe {
    pthread_mutex_t lock;
    pthread_cond_t filled, emptied;
    pthread_t thread;
    bool cancel;              /* the writer stopped early: the thread must stop too */
    size_t head, tail, count; /* thread fills head, writer empties tail */
    bool holding;             /* the writer still reads the slot at tail */
    layer_fill_fn fill;
    void *ctx;
    struct pipe_slot slots[PIPE_SLOTS];
};

/* Wait for a free slot; NULL when the writer has gone. */
static struct pipe_slot *slot_to_fill(struct layer_pipe *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->count == PIPE_SLOTS && !p->cancel)
        pthread_cond_wait(&p->emptied, &p->lock);
    struct pipe_slot *s = p->cancel ? NULL : &p->slots[p->head];
    pthread_mutex_unlock(&p->lock);
    return s; /* the slot at head is the thread's alone until it is counted */
}

static void publish(struct layer_pipe *p)
{
    pthread_mutex_lock(&p->lock);
    p->head = (p->head + 1) % PIPE_SLOTS;
    p->count++;
    pthread_cond_signal(&p->filled);
    pthread_mutex_unlock(&p->lock);
}

static void *producer(void *arg)
{
    struct layer_pipe *p = arg;

    for (;;) {
        struct pipe_slot *s = slot_to_fill(p);
        if (!s)
            return NULL;
        /* > 0: bytes; 0: the end; -1: the failure the fill function recorded */
        ssize_t n = p->fill(p->ctx, s->data, PIPE_SLOT_SIZE);
        s->len = n;
        publish(p);
        if (n <= 0)
            return NULL;
    }
}

struct layer_pipe *layer_pipe_start(layer_fill_fn fill, void *ctx)
{
    struct layer_pipe *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->fill = fill;
    p->ctx = ctx;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->filled, NULL);
    pthread_cond_init(&p->emptied, NULL);
    if (pthread_create(&p->thread, NULL, producer, p) != 0) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->filled);
        pthread_cond_destroy(&p->emptied);
        free(p);
        return NULL;
    }
    return p;
}

ssize_t layer_pipe_next(struct layer_pipe *p, const void **out)
{
    pthread_mutex_lock(&p->lock);
    if (p->holding) { /* the writer is done with the previous slot */
        p->holding = false;
        p->tail = (p->tail + 1) % PIPE_SLOTS;
        p->count--;
        pthread_cond_signal(&p->emptied);
    }
    while (p->count == 0)
        pthread_cond_wait(&p->filled, &p->lock);
    struct pipe_slot *s = &p->slots[p->tail];
    ssize_t len = s->len;
    if (len > 0)
        p->holding = true; /* the end and a failure stay queued: asked again, the same */
    pthread_mutex_unlock(&p->lock);
    *out = s->data;
    return len;
}

void layer_pipe_stop(struct layer_pipe *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->cancel = true;
    pthread_cond_signal(&p->emptied);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->filled);
    pthread_cond_destroy(&p->emptied);
    free(p);
}
