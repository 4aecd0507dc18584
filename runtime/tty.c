/* Terminals: the pty comes from the sandbox's own devpts (opened inside it and
 * handed out over the sync socket); the host side puts the user's terminal in
 * raw mode, copies bytes both ways and passes window sizes on. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "lib/fd.h"
#include "runtime/internal.h"

int tty_open_pty(const struct winsize *ws, int *master, int *slave, struct moat_err *err)
{
    char name[64];
    int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);

    if (m < 0)
        return moat_err_sys(err, "open /dev/ptmx");
    if (unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0) {
        moat_err_sys(err, "unlock pty");
        close(m);
        return -1;
    }
    if (ws->ws_row && ioctl(m, TIOCSWINSZ, ws) < 0) {
        moat_err_sys(err, "set the size of %s", name);
        close(m);
        return -1;
    }
    *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*slave < 0) {
        moat_err_sys(err, "open %s", name);
        close(m);
        return -1;
    }
    *master = m;
    return 0;
}

int tty_host_raw(struct tty_session *t, struct moat_err *err)
{
    struct termios raw;

    if (!isatty(STDIN_FILENO))
        return 0;
    if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
        return moat_err_sys(err, "read terminal settings");
    raw = t->saved;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
        return moat_err_sys(err, "set the terminal to raw mode");
    t->raw = true;
    return 0;
}

void tty_host_restore(struct tty_session *t)
{
    if (t->raw)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
    t->raw = false;
}

void tty_get_winsize(struct winsize *ws)
{
    memset(ws, 0, sizeof(*ws));
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, ws) < 0)
        ioctl(STDOUT_FILENO, TIOCGWINSZ, ws);
}

void tty_resize(int master)
{
    struct winsize ws;

    tty_get_winsize(&ws);
    if (ws.ws_row)
        ioctl(master, TIOCSWINSZ, &ws);
}

int tty_pump(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    /* EIO on a pty master: the last slave fd closed, the session is over. */
    if (n <= 0)
        return 1;
    return write_all(to, buf, (size_t)n) < 0 ? 1 : 0;
}
