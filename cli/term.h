/* The user's terminal for moat exec -t and moat attach (cli/term.c): raw mode
 * while a remote terminal is on it, and its size. */
#ifndef MOAT_CLI_TERM_H
#define MOAT_CLI_TERM_H

#include <stdbool.h>
#include <termios.h>

struct term {
    struct termios saved;
    bool raw;
};

/* stdin in raw mode when it is a terminal (else nothing). */
int term_raw(struct term *t);
void term_restore(struct term *t);

/* stdin's (else stdout's) window size; 0 rows when neither is a terminal. */
void term_size(unsigned short *rows, unsigned short *cols);

#endif
