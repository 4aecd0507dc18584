/* The control socket of a detached -t run (MOAT_HOME/runs/ID/ctl.sock,
 * SOCK_SEQPACKET, 0600): each message is one type byte and its payload.
 *   client -> supervisor: ATTACH_DATA bytes for the terminal's input,
 *                         ATTACH_WINSIZE a struct attach_winsize
 *   supervisor -> client: ATTACH_DATA the terminal's output
 * The supervisor ends the connection when the run ends. */
#ifndef MOAT_CLI_ATTACH_H
#define MOAT_CLI_ATTACH_H

#include <stdint.h>

#define ATTACH_DATA 'd'
#define ATTACH_WINSIZE 'w'
#define ATTACH_MSG_MAX 16385 /* type byte + 16 KiB */

struct attach_winsize {
    uint16_t rows, cols;
};

/* Detach keys, as docker's: ctrl-p ctrl-q. */
#define ATTACH_DETACH_1 0x10
#define ATTACH_DETACH_2 0x11

#endif
