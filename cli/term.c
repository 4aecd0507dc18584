/* The user's terminal: raw while a remote one is on it, restored after. */
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/term.h"

int term_raw(struct term *t)
{
    struct termios raw;

    t->raw = false;
    if (!isatty(STDIN_FILENO))
        return 0;
    if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
        return -1;
    raw = t->saved;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
        return -1;
    t->raw = true;
    return 0;
}

void term_restore(struct term *t)
{
    if (t->raw)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
    t->raw = false;
}

void term_size(unsigned short *rows, unsigned short *cols)
{
    struct winsize ws;

    memset(&ws, 0, sizeof(ws));
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
        ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
    *rows = ws.ws_row;
    *cols = ws.ws_col;
}
