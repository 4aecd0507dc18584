/* Leveled logging to stderr. The level comes from MOAT_LOG, then -v / --log-level. */
#ifndef MOAT_LIB_LOG_H
#define MOAT_LIB_LOG_H

enum moat_log_level {
    MOAT_LOG_ERROR = 0,
    MOAT_LOG_WARN,
    MOAT_LOG_INFO,
    MOAT_LOG_DEBUG,
    MOAT_LOG_TRACE,
};

/* Parse "error|warn|info|debug|trace"; returns the level or -1. */
int moat_log_parse_level(const char *name);

/* Set the level from MOAT_LOG when it is set and valid (default: warn). */
void moat_log_init(void);

void moat_log_set_level(int level);
int moat_log_get_level(void);

/* Send every message that passes the level to SINK (MSG without the "moat: "
 * prefix) instead of stderr; NULL restores stderr. For moat-runtime's --log. */
typedef void (*moat_log_sink)(int level, const char *msg, void *ctx);
void moat_log_set_sink(moat_log_sink sink, void *ctx);

void moat_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) moat_log(MOAT_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) moat_log(MOAT_LOG_WARN, __VA_ARGS__)
#define log_info(...) moat_log(MOAT_LOG_INFO, __VA_ARGS__)
#define log_debug(...) moat_log(MOAT_LOG_DEBUG, __VA_ARGS__)

#endif
