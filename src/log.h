/*
 * log.h - the daemon's small logging API (after OpenSMTPD's log.c).
 *
 * Lines go to stderr in the foreground and to syslog otherwise.  Session
 * lines are greppable key=value pairs led by the client id, e.g.
 *   client=7 event=connect peer=127.0.0.1:40112
 * Nothing here ever sees a password: callers mask before logging.
 */
#ifndef POP3D_LOG_H
#define POP3D_LOG_H

#include <stdarg.h>

#define LOG_FMT(a, b) __attribute__((format(printf, a, b)))

void log_init(int foreground, int verbose, const char *ident);
void log_reopen(void);
int log_verbose(void);
void log_set_verbose(int);
void log_warn(const char *, ...) LOG_FMT(1, 2); /* appends strerror(errno) */
void log_warnx(const char *, ...) LOG_FMT(1, 2);
void log_info(const char *, ...) LOG_FMT(1, 2);
void log_debug(const char *, ...) LOG_FMT(1, 2); /* -v */
void log_trace(const char *, ...) LOG_FMT(1, 2); /* -vv: every event */
void fatal(const char *, ...) LOG_FMT(1, 2) __attribute__((noreturn));
void fatalx(const char *, ...) LOG_FMT(1, 2) __attribute__((noreturn));

#endif
