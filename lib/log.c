#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

/* The one piece of process-wide state: set once by the CLI at start-up. */
static int current_level = MOAT_LOG_WARN;
static moat_log_sink current_sink;
static void *current_sink_ctx;

int moat_log_parse_level(const char *name)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (name && strcmp(name, level_names[i]) == 0)
            return i;
    if (name && strcmp(name, "warning") == 0)
        return MOAT_LOG_WARN;
    return -1;
}

void moat_log_init(void)
{
    int level = moat_log_parse_level(getenv("MOAT_LOG"));

    if (level >= 0)
        current_level = level;
}

void moat_log_set_level(int level)
{
    if (level < MOAT_LOG_ERROR)
        level = MOAT_LOG_ERROR;
    if (level > MOAT_LOG_TRACE)
        level = MOAT_LOG_TRACE;
    current_level = level;
}

int moat_log_get_level(void)
{
    return current_level;
}

void moat_log_set_sink(moat_log_sink sink, void *ctx)
{
    current_sink = sink;
    current_sink_ctx = ctx;
}

void moat_log(int level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    if (level > current_level)
        return;
    if (current_sink) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        current_sink(level, line, current_sink_ctx);
        return;
    }
    n = snprintf(line, sizeof(line), "moat: %s%s", level == MOAT_LOG_WARN ? "warning: " : "",
                 level >= MOAT_LOG_DEBUG ? "debug: " : "");
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    /* One write per line so lines from the supervisor and the sandbox never interleave. */
    fprintf(stderr, "%s\n", line);
}
