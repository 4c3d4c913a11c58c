/* log.c - logging to stderr or syslog. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <sys/time.h>

#include "log.h"

static int log_foreground = 1;
static int log_level;
static const char *log_ident = "pop3d";

/* Start logging; in the background, open syslog. */
void
log_init(int foreground, int verbose, const char *ident)
{
	log_foreground = foreground;
	log_level = verbose;
	if (ident != NULL)
		log_ident = ident;
	if (!foreground)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	tzset();
}

/* Re-open the log (SIGHUP): syslog's connection may have gone stale. */
void
log_reopen(void)
{
	if (!log_foreground) {
		closelog();
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
}

int
log_verbose(void)
{
	return log_level;
}

void
log_set_verbose(int v)
{
	log_level = v;
}

static void log_vwrite(int, int, const char *, va_list) __attribute__((format(printf, 3, 0)));

/* Write one formatted line at priority pri, with an optional errno text. */
static void
log_vwrite(int pri, int err, const char *fmt, va_list ap)
{
	char msg[2048];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if (err != 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(err));
	if (log_foreground) {
		struct timeval tv;
		struct tm tm;
		char ts[32];

		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s: %s\n", ts, (long)(tv.tv_usec / 1000), log_ident, msg);
		fflush(stderr);
	} else
		syslog(pri, "%s", msg);
}

#define LOG_BODY(pri, err) \
	do { \
		va_list ap; \
		va_start(ap, fmt); \
		log_vwrite(pri, err, fmt, ap); \
		va_end(ap); \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	int err = errno;

	LOG_BODY(LOG_WARNING, err);
	errno = err;
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_WARNING, 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_INFO, 0);
}

void
log_debug(const char *fmt, ...)
{
	if (log_level < 1)
		return;
	LOG_BODY(LOG_DEBUG, 0);
}

void
log_trace(const char *fmt, ...)
{
	if (log_level < 2)
		return;
	LOG_BODY(LOG_DEBUG, 0);
}

/* Start-up failure with errno text: log and exit 1. */
void
fatal(const char *fmt, ...)
{
	int err = errno;

	LOG_BODY(LOG_CRIT, err);
	exit(1);
}

/* Start-up failure: log and exit 1. */
void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, 0);
	exit(1);
}
