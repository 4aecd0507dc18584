/* Host name lookups off the proxy's loop: getaddrinfo() blocks for as long as the
 * host's resolver takes, so a few threads of their own make the calls and hand
 * each finished lookup back through an eventfd the loop watches. The threads only
 * ever see a job's name and addresses, never a connection; the loop alone decides
 * what a result is still good for. */
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "proxy/internal.h"

struct resolver {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct resolve_job *todo, **todo_tail, *done;
    unsigned threads, idle;
    unsigned refs; /* the loop's and each thread's: the last one out frees this */
    bool quit;
    int efd;
};

void resolve_lookup(struct resolve_job *j)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;

    j->n = 0;
    j->gai = getaddrinfo(j->name, NULL, &hints, &res);
    for (struct addrinfo *ai = res; ai && j->n < RESOLVE_ADDRS; ai = ai->ai_next)
        j->addrs[j->n++] = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    if (res)
        freeaddrinfo(res);
}

static void free_jobs(struct resolve_job *j)
{
    while (j) {
        struct resolve_job *next = j->next;
        free(j);
        j = next;
    }
}

static void destroy(struct resolver *r)
{
    free_jobs(r->todo);
    free_jobs(r->done);
    close(r->efd);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Drop one reference, R's lock held (released here). */
static void unref_unlock(struct resolver *r)
{
    bool last = --r->refs == 0;

    pthread_mutex_unlock(&r->mu);
    if (last)
        destroy(r);
}

static void *worker(void *arg)
{
    struct resolver *r = arg;
    uint64_t one = 1;

    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->todo && !r->quit) {
            r->idle++;
            pthread_cond_wait(&r->cv, &r->mu);
            r->idle--;
        }
        if (r->quit)
            break;
        struct resolve_job *j = r->todo;
        r->todo = j->next;
        if (!r->todo)
            r->todo_tail = &r->todo;
        pthread_mutex_unlock(&r->mu);
        resolve_lookup(j);
        pthread_mutex_lock(&r->mu);
        j->next = r->done;
        r->done = j;
        if (write(r->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("proxy: resolver: wake the loop: %s", strerror(errno));
    }
    unref_unlock(r);
    return NULL;
}

int resolver_new(struct resolver **out, struct moat_err *err)
{
    struct resolver *r = calloc(1, sizeof(*r));

    if (!r)
        return moat_err_sys(err, "proxy: resolver");
    r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->efd < 0) {
        moat_err_sys(err, "proxy: resolver");
        free(r);
        return -1;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->todo_tail = &r->todo;
    r->refs = 1;
    *out = r;
    return 0;
}

int resolver_fd(const struct resolver *r)
{
    return r->efd;
}

/* A thread more, R's lock held: 0, or -1 (the caller goes on with the ones it has). */
static int spawn(struct resolver *r)
{
    pthread_attr_t attr;
    pthread_t t;

    if (pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* the loop's thread blocks every signal; its resolvers inherit that */
    int rc = pthread_create(&t, &attr, worker, r);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return -1;
    r->threads++;
    r->refs++;
    return 0;
}

struct resolve_job *resolver_submit(struct resolver *r, struct conn *c, const char *name,
                                    uint16_t port, struct moat_err *err)
{
    struct resolve_job *j = calloc(1, sizeof(*j));

    if (!j) {
        moat_err_sys(err, "resolve %s", name);
        return NULL;
    }
    j->conn = c;
    j->port = port;
    snprintf(j->name, sizeof(j->name), "%s", name);
    pthread_mutex_lock(&r->mu);
    if (r->idle == 0 && r->threads < RESOLVE_THREADS && spawn(r) < 0 && r->threads == 0) {
        pthread_mutex_unlock(&r->mu);
        free(j);
        moat_err_set(err, 0, "resolve %s: no thread to resolve it on", name);
        return NULL;
    }
    *r->todo_tail = j;
    r->todo_tail = &j->next;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return j;
}

struct resolve_job *resolver_done(struct resolver *r)
{
    uint64_t n;

    if (read(r->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn("proxy: resolver: %s", strerror(errno));
    pthread_mutex_lock(&r->mu);
    struct resolve_job *j = r->done;
    r->done = NULL;
    pthread_mutex_unlock(&r->mu);
    return j;
}

void resolver_release(struct resolver *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    /* a lookup in progress is not waited for: its thread frees what is left */
    r->quit = true;
    pthread_cond_broadcast(&r->cv);
    unref_unlock(r);
}
