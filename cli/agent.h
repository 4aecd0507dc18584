/* moat claude / moat codex (cli/agent.c), and the copy of the user's agent
 * settings they put into the sandbox's home (cli/agent_home.c): copied, never
 * mounted, credentials left behind. What is copied and what is dropped is in
 * docs/internals.md ("Agent settings"). */
#ifndef MOAT_CLI_AGENT_H
#define MOAT_CLI_AGENT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"
#include "runtime/runtime.h"

#define AGENT_HOME_FILE_MAX (4u << 20)   /* bytes of one copied file; larger ones are skipped */
#define AGENT_HOME_TOTAL_MAX (16u << 20) /* bytes of the whole copy */
#define AGENT_HOME_ENTRIES_MAX 1024      /* files and directories of the whole copy */
#define AGENT_HOME_DEPTH_MAX 8           /* directories below an item */

enum home_filter {
    HOME_PLAIN, /* copied as it is */
    HOME_JSON,  /* token-like members dropped at every depth (agent_filter_json) */
    HOME_TOML,  /* token-like lines and tables dropped (agent_filter_toml) */
};

/* One thing of the user's home an agent's sandbox gets a copy of. */
struct home_item {
    const char *path; /* relative to $HOME, e.g. ".claude/settings.json" */
    bool dir;         /* a directory: its regular files, recursively, plain */
    enum home_filter filter;
    const char *const *drop; /* HOME_JSON: top-level members dropped too (NULL-terminated) */
};

/* The copy: files for the home tmpfs (rt_mount.files), names and data owned. */
struct agent_home {
    struct rt_file *files;
    size_t n, cap;
    size_t bytes;
    bool capped; /* a cap was reached (and said) */
};

/* Copy the N ITEMS from the home directory HOME (opened by fd; no symlink is
 * followed, none is copied) into H. A missing item is skipped; a symlink, a
 * file over AGENT_HOME_FILE_MAX, a file its filter cannot read, or what passes
 * the caps is skipped with a warning. -1 only on a hard error (HOME itself,
 * memory). */
int agent_home_copy(const char *home, const struct home_item *items, size_t n, struct agent_home *h,
                    struct moat_err *err);
void agent_home_free(struct agent_home *h);

/* Whether NAME (a file name, JSON member or TOML key, LEN bytes) looks like it
 * names a credential: token, secret, password, credential, auth, api key,
 * bearer, cookie, session, private key; or a file ending .key, .pem, .p12. */
bool agent_token_like(const char *name, size_t len);

/* Whether the string V (LEN bytes) looks like a credential itself: the
 * prefixes of Anthropic, OpenAI, GitHub, GitLab, Slack and AWS keys, "Bearer ". */
bool agent_token_value(const char *v, size_t len);

/* The JSON document TEXT (LEN bytes) with every member whose name is token-like
 * or whose value is a token-like string dropped, at every depth, and the
 * top-level members named in DROP (NULL-terminated, may be NULL). NAME is what
 * errors talk about. *OUT is malloc'd and NUL-terminated. */
int agent_filter_json(const char *text, size_t len, const char *const *drop, const char *name,
                      char **out, size_t *out_len, struct moat_err *err);

/* The TOML text TEXT (LEN bytes) without the lines that mention a token-like
 * word or value, and without the tables whose header does. */
int agent_filter_toml(const char *text, size_t len, char **out, size_t *out_len,
                      struct moat_err *err);

#endif
