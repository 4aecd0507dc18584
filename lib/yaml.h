/* libyaml helpers shared by the YAML files moat reads (moat.yaml, providers):
 * loading one document safely, and errors that name file:line:column. */
#ifndef MOAT_LIB_YAML_H
#define MOAT_LIB_YAML_H

#include <stddef.h>
#include <yaml.h>

#include "lib/err.h"

/* Load the one YAML document in the LEN bytes of TEXT (named NAME in errors)
 * into DOC, refusing anchors and aliases (a few lines must not expand into a
 * huge document) and a second document. On success DOC needs
 * yaml_document_delete(); its root is NULL for an empty file. */
int yaml_load_one(const char *name, const char *text, size_t len, yaml_document_t *doc,
                  struct moat_err *err);

/* "NAME:LINE:COLUMN: message" at the start of node N; returns -1. */
int yaml_err_at(struct moat_err *err, const char *name, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
