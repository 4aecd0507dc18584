#include "lib/yaml.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int parser_fail(const char *name, const yaml_parser_t *p, struct moat_err *err)
{
    const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->context_mark;
    return moat_err_set(err, 0, "%s:%zu:%zu: %s", name, m->line + 1, m->column + 1,
                        p->problem ? p->problem : "not valid YAML");
}

/* Anchors and aliases would let a few lines stand for a huge document. */
static int refuse_aliases(const char *name, const char *text, size_t len, struct moat_err *err)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int r = 0;

    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    for (bool done = false; !done && r == 0;) {
        if (!yaml_parser_parse(&p, &ev)) {
            r = parser_fail(name, &p, err);
            break;
        }
        bool anchored = (ev.type == YAML_SCALAR_EVENT && ev.data.scalar.anchor) ||
                        (ev.type == YAML_SEQUENCE_START_EVENT && ev.data.sequence_start.anchor) ||
                        (ev.type == YAML_MAPPING_START_EVENT && ev.data.mapping_start.anchor);
        if (ev.type == YAML_ALIAS_EVENT || anchored)
            r = moat_err_set(err, 0, "%s:%zu:%zu: anchors and aliases are not supported", name,
                             ev.start_mark.line + 1, ev.start_mark.column + 1);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return r;
}

int yaml_load_one(const char *name, const char *text, size_t len, yaml_document_t *doc,
                  struct moat_err *err)
{
    yaml_parser_t p;
    yaml_document_t extra;
    int r = 0;

    if (refuse_aliases(name, text, len, err) < 0)
        return -1;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, doc)) {
        r = parser_fail(name, &p, err);
        yaml_parser_delete(&p);
        return r;
    }
    if (yaml_document_get_root_node(doc)) {
        if (!yaml_parser_load(&p, &extra)) {
            r = parser_fail(name, &p, err);
        } else {
            if (yaml_document_get_root_node(&extra))
                r = moat_err_set(err, 0, "%s: holds more than one YAML document", name);
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&p);
    if (r < 0)
        yaml_document_delete(doc);
    return r;
}

int yaml_err_at(struct moat_err *err, const char *name, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return moat_err_set(err, 0, "%s:%zu:%zu: %s", name, n->start_mark.line + 1,
                        n->start_mark.column + 1, msg);
}
