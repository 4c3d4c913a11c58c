/* ctl_exec.c - pop3ctl listen --exec: a program per event, the event in its environment. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <jansson.h>

#include "pop3ctl.h"

extern char **environ;

/* Whether an environment entry is one that --exec sets itself. */
static int
ctlexec_env_ours(const char *e)
{
	static const char *const names[] = { "POP3D_EVENT=", "POP3D_CLIENT=", "POP3D_TAG=",
		"POP3D_STATE=", "POP3D_SEQ=", "POP3D_ARGC=", "POP3D_ARGS_JSON=", "POP3D_TLS=",
		"POP3D_ORIGIN=", "POP3D_CONTROL=", NULL };
	size_t i, d;

	for (i = 0; names[i] != NULL; i++)
		if (strncmp(e, names[i], strlen(names[i])) == 0)
			return 1;
	if (strncmp(e, "POP3D_ARG", 9) != 0)
		return 0;
	d = strspn(e + 9, "0123456789");
	return d > 0 && e[9 + d] == '=';
}

/* Append "name=value" (value cut at a NUL) to env; 0, or -1. */
static int
ctlexec_env_add(char **env, size_t *n, const char *name, const char *value, size_t len)
{
	size_t vlen = strnlen(value, len), size = strlen(name) + vlen + 2;
	char *e;

	if ((e = ctlutil_alloc(size)) == NULL)
		return -1;
	snprintf(e, size, "%s=%.*s", name, (int)vlen, value);
	env[(*n)++] = e;
	return 0;
}

/* Append an integer member of ev as name=decimal ("" when absent). */
static int
ctlexec_env_int(char **env, size_t *n, const char *name, json_t *v)
{
	char num[32] = ""; /* a 64-bit integer: at most 20 digits and a sign */

	if (json_is_integer(v))
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return ctlexec_env_add(env, n, name, num, strlen(num));
}

/* Free an environment vector built by ctlexec_env_build. */
static void
ctlexec_env_free(char **env, size_t keep)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = keep; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/* The environment for --exec: ours minus stale POP3D_* plus the event's
 * fields.  The first *keep entries are borrowed from environ. */
static char **
ctlexec_env_build(struct pop3ctl_ctx *x, json_t *ev, size_t *keep)
{
	json_t *args = json_object_get(ev, "args"), *tls = json_object_get(ev, "tls");
	const char *state = json_string_value(json_object_get(ev, "state"));
	const char *name = json_string_value(json_object_get(ev, "event"));
	size_t nenv = 0, nargs = json_array_size(args), n = 0, i, len;
	char **env, key[32], *t; /* key: "POP3D_ARG" and at most 20 digits */
	int rv = 0;

	while (environ[nenv] != NULL)
		nenv++;
	/* 16: the 10 POP3D_* entries set below, the NULL, and room. */
	if ((env = calloc(nenv + nargs + 16, sizeof(*env))) == NULL) {
		ctlutil_warn("out of memory");
		return NULL;
	}
	for (i = 0; i < nenv; i++)
		if (!ctlexec_env_ours(environ[i]))
			env[n++] = environ[i];
	*keep = n;
	rv |= ctlexec_env_add(env, &n, "POP3D_CONTROL", x->socket, strlen(x->socket));
	rv |= ctlexec_env_add(env, &n, "POP3D_EVENT", name ? name : "", name ? strlen(name) : 0);
	rv |= ctlexec_env_int(env, &n, "POP3D_CLIENT", json_object_get(ev, "client"));
	rv |= ctlexec_env_int(env, &n, "POP3D_TAG", json_object_get(ev, "tag"));
	rv |=
	    ctlexec_env_add(env, &n, "POP3D_STATE", state ? state : "", state ? strlen(state) : 0);
	rv |= ctlexec_env_int(env, &n, "POP3D_SEQ", json_object_get(ev, "seq"));
	rv |= ctlexec_env_add(env, &n, "POP3D_TLS", json_is_true(tls) ? "1" : tls ? "0" : "", 1);
	rv |= ctlexec_env_int(env, &n, "POP3D_ORIGIN", json_object_get(ev, "origin"));
	snprintf(key, sizeof(key), "%zu", nargs);
	rv |= ctlexec_env_add(env, &n, "POP3D_ARGC", key, strlen(key));
	if ((t = args != NULL ? json_dumps(args, JSON_COMPACT) : strdup("[]")) == NULL)
		rv = -1;
	else
		rv |= ctlexec_env_add(env, &n, "POP3D_ARGS_JSON", t, strlen(t));
	free(t);
	for (i = 0; i < nargs && rv == 0; i++) {
		snprintf(key, sizeof(key), "POP3D_ARG%zu", i);
		if ((t = ctlprint_arg_text(ev, i, &len)) != NULL && !x->raw_args)
			t = ctlprint_escaped(t, &len);
		if (t == NULL)
			rv = -1;
		else
			rv |= ctlexec_env_add(env, &n, key, t, len);
		free(t);
	}
	if (rv != 0) {
		ctlexec_env_free(env, *keep);
		return NULL;
	}
	return env;
}

/* Run cmd via /bin/sh -c with env, stdin /dev/null; its stdout (at most
 * POP3CTL_MAX_OUTPUT octets) is returned malloc'd, NULL on failure. */
static char *
ctlexec_run(const char *cmd, char **env, size_t *len)
{
	static const char fail[] = "pop3ctl: cannot run /bin/sh\n";
	char *argv[4] = { (char *)"sh", (char *)"-c", (char *)cmd, NULL };
	char *buf = NULL, *nb, chunk[POP3CTL_READ_CHUNK];
	size_t cap = 0;
	int pfd[2], st, over = 0, nul;
	ssize_t n;
	pid_t pid;

	*len = 0;
	if (pipe2(pfd, O_CLOEXEC) == -1) {
		ctlutil_warn("pipe: %s", strerror(errno));
		return NULL;
	}
	fflush(stdout);
	if ((pid = fork()) == -1) {
		ctlutil_warn("fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return NULL;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here. */
		if (dup2(pfd[1], STDOUT_FILENO) == -1 ||
		    (nul = open("/dev/null", O_RDONLY)) == -1 || dup2(nul, STDIN_FILENO) == -1)
			_exit(127);
		execve("/bin/sh", argv, env);
		if (write(STDERR_FILENO, fail, sizeof(fail) - 1) == -1)
			_exit(127);
		_exit(127);
	}
	if (close(pfd[1]) == -1)
		ctlutil_warn("close: %s", strerror(errno));
	for (;;) {
		n = read(pfd[0], chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			ctlutil_warn("read from the command: %s", strerror(errno));
			over = 1;
			break;
		}
		if (n == 0)
			break;
		if (over)
			continue; /* drain, so that the command can finish */
		if (*len + (size_t)n > POP3CTL_MAX_OUTPUT) {
			ctlutil_warn("the command printed more than %lu octets; nothing sent",
			    POP3CTL_MAX_OUTPUT);
			over = 1;
			continue;
		}
		if (*len + (size_t)n + 1 > cap) {
			cap = (*len + (size_t)n + 1) * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				ctlutil_warn("out of memory");
				over = 1;
				continue;
			}
			buf = nb;
		}
		memcpy(buf + *len, chunk, (size_t)n);
		*len += (size_t)n;
	}
	if (close(pfd[0]) == -1)
		ctlutil_warn("close: %s", strerror(errno));
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR) {
			ctlutil_warn("waitpid: %s", strerror(errno));
			st = 0;
			break;
		}
	if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		ctlutil_warn("--exec command exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		ctlutil_warn("--exec command killed by signal %d", WTERMSIG(st));
	if (over) {
		free(buf);
		*len = 0;
		return NULL;
	}
	if (buf == NULL && (buf = ctlutil_alloc(1)) == NULL)
		return NULL;
	buf[*len] = '\0';
	return buf;
}

/* --exec for one event: run CMD, send its stdout lines to the event's client. */
void
ctlexec_event(struct pop3ctl_ctx *x, json_t *ev)
{
	json_t *client = json_object_get(ev, "client"), *tag = json_object_get(ev, "tag"), *o;
	size_t keep, len, n, nsend, *lens;
	char **env, *out, **lines;
	int multi;

	if ((env = ctlexec_env_build(x, ev, &keep)) == NULL)
		return;
	out = ctlexec_run(x->exec, env, &len);
	ctlexec_env_free(env, keep);
	if (out == NULL)
		return;
	if (ctlutil_split_lines(out, len, &lines, &lens, &n) == -1) {
		free(out);
		return;
	}
	free(out);
	/* A last line "." ends a multi-line response explicitly, as on the
	 * wire: it is not sent (pop3d adds the terminator), and it allows a
	 * response with no body. */
	nsend = n;
	multi = n > 1;
	if (n > 1 && lens[n - 1] == 1 && lines[n - 1][0] == '.')
		nsend--;
	if (n > 0 && !json_is_integer(client))
		ctlutil_warn("event %s has no client: the command's output is dropped",
		    json_string_value(json_object_get(ev, "event")));
	else if (n > 0) {
		if ((o = json_object()) == NULL || json_object_set(o, "client", client) == -1 ||
		    (json_is_integer(tag) && json_object_set(o, "tag", tag) == -1) ||
		    (!multi ? ctlutil_set_bytes(o, "text", "text_b64", lines[0], lens[0]) :
			      ctlutil_set_lines(o, lines, lens, nsend)) == -1) {
			ctlutil_warn("out of memory");
			json_decref(o);
		} else
			(void)ctlconn_send_cmd(&x->conn, "send_to_client", o);
	}
	ctlutil_free_lines(lines, lens, n);
}
