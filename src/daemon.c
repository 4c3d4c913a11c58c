/*
 * daemon.c - option parsing, start-up, signals and the main loop of pop3d.
 * Options mirror the spawn options of POE::Component::Server::POP3.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../control/control.h"
#include "daemon.h"
#include "log.h"
#include "pop3d.h"

enum {
	OPT_ADDRESS = 256,
	OPT_PORT,
	OPT_HOSTNAME,
	OPT_SERVER_VERSION,
	OPT_NO_GREETING,
	OPT_ALIAS,
	OPT_PIPELINE_DEPTH,
	OPT_TIMEOUT,
	OPT_RESPONSE_TIMEOUT,
	OPT_MAX_LINE,
	OPT_MAX_BAD_LINES,
	OPT_MAX_CLIENTS,
	OPT_MAX_PER_ADDRESS,
	OPT_COMMAND,
	OPT_CONTROL,
	OPT_CONTROL_MODE,
	OPT_CONTROL_GROUP,
	OPT_CONTROL_ALLOW_UID,
	OPT_MAX_CONTROLLERS,
	OPT_CONTROL_MAX_LINE,
	OPT_CONTROL_MAX_OUTPUT,
	OPT_CONTROL_STALL,
	OPT_MAX_AUTH_LINE,
	OPT_PLUGIN,
	OPT_LISTEN,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CIPHERS,
	OPT_TLS_HANDSHAKE_TIMEOUT,
	OPT_PROXY_TRUSTED,
	OPT_PROXY_TIMEOUT,
	OPT_AUTH_FAIL_DELAY,
	OPT_MAX_AUTH_FAILURES,
	OPT_USER,
	OPT_GROUP,
	OPT_HELP,
	OPT_VERSION,
	OPT_SEND_FILE_ROOT
};

static const struct option daemon_longopts[] = {
	{ "address", required_argument, NULL, OPT_ADDRESS },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "hostname", required_argument, NULL, OPT_HOSTNAME },
	{ "server-version", required_argument, NULL, OPT_SERVER_VERSION },
	{ "no-greeting", no_argument, NULL, OPT_NO_GREETING },
	{ "alias", required_argument, NULL, OPT_ALIAS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "response-timeout", required_argument, NULL, OPT_RESPONSE_TIMEOUT },
	{ "max-line", required_argument, NULL, OPT_MAX_LINE },
	{ "max-bad-lines", required_argument, NULL, OPT_MAX_BAD_LINES },
	{ "pipeline-depth", required_argument, NULL, OPT_PIPELINE_DEPTH },
	{ "max-auth-line", required_argument, NULL, OPT_MAX_AUTH_LINE },
	{ "plugin", required_argument, NULL, OPT_PLUGIN },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-ciphers", required_argument, NULL, OPT_TLS_CIPHERS },
	{ "tls-handshake-timeout", required_argument, NULL, OPT_TLS_HANDSHAKE_TIMEOUT },
	{ "proxy-trusted", required_argument, NULL, OPT_PROXY_TRUSTED },
	{ "proxy-timeout", required_argument, NULL, OPT_PROXY_TIMEOUT },
	{ "auth-fail-delay", required_argument, NULL, OPT_AUTH_FAIL_DELAY },
	{ "max-auth-failures", required_argument, NULL, OPT_MAX_AUTH_FAILURES },
	{ "send-file-root", required_argument, NULL, OPT_SEND_FILE_ROOT },
	{ "user", required_argument, NULL, OPT_USER },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
	{ "max-per-address", required_argument, NULL, OPT_MAX_PER_ADDRESS },
	{ "command", required_argument, NULL, OPT_COMMAND },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "control-mode", required_argument, NULL, OPT_CONTROL_MODE },
	{ "control-group", required_argument, NULL, OPT_CONTROL_GROUP },
	{ "control-allow-uid", required_argument, NULL, OPT_CONTROL_ALLOW_UID },
	{ "max-controllers", required_argument, NULL, OPT_MAX_CONTROLLERS },
	{ "control-max-line", required_argument, NULL, OPT_CONTROL_MAX_LINE },
	{ "control-max-output", required_argument, NULL, OPT_CONTROL_MAX_OUTPUT },
	{ "control-stall-timeout", required_argument, NULL, OPT_CONTROL_STALL },
	{ "foreground", no_argument, NULL, 'f' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void
daemon_usage(FILE *f)
{
	fprintf(f,
	    "usage: pop3d [-fv] [--address ADDR] [--port N] [--hostname NAME]\n"
	    "             [--server-version STR] [--no-greeting] [--alias NAME]\n"
	    "             [--timeout S] [--response-timeout S] [--max-line N]\n"
	    "             [--max-bad-lines N] [--max-auth-line N] [--max-clients N]\n"
	    "             [--max-per-address N] [--pipeline-depth N]\n"
	    "             [--command VERB]... [--control PATH] [--control-mode MODE]\n"
	    "             [--control-group GROUP] [--control-allow-uid UID]...\n"
	    "             [--max-controllers N] [--control-max-line N]\n"
	    "             [--control-max-output N] [--control-stall-timeout S]\n"
	    "             [--plugin PATH.so[=ARG]]... [--listen ADDR:PORT[,tls][,proxy]]...\n"
	    "             [--tls-cert FILE --tls-key FILE] [--tls-ciphers LIST]\n"
	    "             [--tls-handshake-timeout S] [--proxy-trusted CIDR]...\n"
	    "             [--proxy-timeout S] [--auth-fail-delay MS]\n"
	    "             [--max-auth-failures N] [--send-file-root DIR]\n"
	    "             [--user USER [--group GROUP]]\n"
	    "See pop3d(8).\n");
}

/* Parse an unsigned number within [min, max] or exit with usage status. */
static unsigned long long
daemon_number(const char *opt, const char *s, unsigned long long min, unsigned long long max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < min || v > max) {
		fprintf(stderr, "pop3d: --%s: %s: expected a number from %llu to %llu\n", opt, s,
		    min, max);
		exit(2);
	}
	return v;
}

/*
 * Load PATH.so[=ARG]: dlopen, the versioned entry point, the ABI check.
 * Handles stay open for the life of the process (plugins may keep timers).
 */
static int
daemon_plugin(struct pop3d *srv, const char *spec)
{
	const struct pop3d_plugin_def *def;
	pop3d_plugin_entry_fn entry;
	char *path, *arg;
	void *h;
	int n;

	if ((path = strdup(spec)) == NULL)
		return -1;
	if ((arg = strchr(path, '=')) != NULL)
		*arg++ = '\0';
	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		log_warnx("plugin %s: %s", path, dlerror());
		free(path);
		return -1;
	}
	*(void **)(&entry) = dlsym(h, POP3D_PLUGIN_ENTRY);
	if (entry == NULL || (def = entry()) == NULL) {
		log_warnx("plugin %s: no %s() entry point", path, POP3D_PLUGIN_ENTRY);
		free(path);
		return -1;
	}
	if (def->abi != POP3D_ABI_VERSION) {
		log_warnx("plugin %s: built for plugin ABI %d, this pop3d has ABI %d; rebuild it "
			  "against this pop3d.h",
		    path, def->abi, POP3D_ABI_VERSION);
		free(path);
		return -1;
	}
	if ((n = pop3d_plugin_load(srv, def, NULL, arg)) < 0) {
		log_warn("plugin %s: cannot add %s", path, def->name != NULL ? def->name : "?");
		free(path);
		return -1;
	}
	log_info("event=plugin-loaded plugin=%s path=%s plugins=%d", def->name, path, n);
	free(path);
	return 0;
}

/* --listen ADDR:PORT[,tls][,proxy]; IPv6 as [::1]:1110. */
static void
daemon_listen(struct pop3d *srv, const char *spec)
{
	char buf[256], *addr = buf, *port, *opt, *save = NULL;
	int flags = 0, p;

	if (strlen(spec) >= sizeof(buf))
		fatalx("--listen %s: too long", spec);
	strcpy(buf, spec);
	if ((opt = strchr(buf, ',')) != NULL)
		*opt++ = '\0';
	if (*addr == '[') {
		addr++;
		if ((port = strchr(addr, ']')) == NULL || port[1] != ':')
			fatalx("--listen %s: expected [IPV6]:PORT", spec);
		*port = '\0';
		port += 2;
	} else {
		if ((port = strrchr(addr, ':')) == NULL)
			fatalx("--listen %s: expected ADDR:PORT", spec);
		*port++ = '\0';
	}
	p = (int)daemon_number("listen", port, 0, 65535);
	for (opt = opt != NULL ? strtok_r(opt, ",", &save) : NULL; opt != NULL;
	     opt = strtok_r(NULL, ",", &save)) {
		if (strcmp(opt, "tls") == 0)
			flags |= POP3D_LISTEN_TLS;
		else if (strcmp(opt, "proxy") == 0)
			flags |= POP3D_LISTEN_PROXY;
		else
			fatalx("--listen %s: unknown flag %s (tls, proxy)", spec, opt);
	}
	if ((flags & POP3D_LISTEN_TLS) && !pop3d_tls_available(srv))
		fatalx("--listen %s: tls needs --tls-cert and --tls-key", spec);
	if (pop3d_listen_flags(srv, *addr != '\0' && strcmp(addr, "*") != 0 ? addr : NULL, p,
		flags) == -1)
		fatal("cannot listen on %s", spec);
}

/*
 * Drop to user (and group, else the user's primary group) once every
 * socket is bound: supplementary groups, then gid, then uid, then verify
 * that none of them can be regained.
 */
static void
daemon_drop(const char *user, const char *group)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid;
	gid_t gid;

	if ((pw = getpwnam(user)) == NULL)
		fatalx("--user %s: no such user", user);
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL)
			fatalx("--group %s: no such group", group);
		gid = gr->gr_gid;
	}
	if (setgroups(1, &gid) == -1)
		fatal("setgroups");
	if (setresgid(gid, gid, gid) == -1)
		fatal("setresgid");
	if (setresuid(uid, uid, uid) == -1)
		fatal("setresuid");
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
		fatalx("privilege drop did not take");
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		fatalx("privilege drop can be undone; refusing to run");
	log_info("event=privileges-dropped user=%s uid=%lu gid=%lu", user, (unsigned long)uid,
	    (unsigned long)gid);
}

struct daemon_state {
	struct event_base *base;
	struct pop3d *srv;
	struct control *ctl;
};

static void
daemon_stopped(struct pop3d *srv, void *arg)
{
	struct daemon_state *ds = arg;

	(void)srv;
	event_base_loopexit(ds->base, NULL);
}

static void
daemon_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon_state *ds = arg;

	(void)what;
	if (sig == SIGHUP) {
		log_reopen();
		log_info("event=sighup");
		if (pop3d_tls_available(ds->srv) && pop3d_tls_reload(ds->srv) == -1)
			log_warnx("event=tls-reload-failed keeping=previous");
		return;
	}
	log_info("event=signal signal=%s", sig == SIGTERM ? "TERM" : "INT");
	if (ds->ctl != NULL)
		control_shutdown(ds->ctl);
	pop3d_shutdown(ds->srv);
}

int
daemon_main(int argc, char **argv, void (*setup)(struct pop3d *))
{
	struct pop3d_options opts;
	struct control_options copts;
	struct daemon_state ds;
	struct event *sigs[3];
	const char *address = NULL, **verbs, **plugins, **listens, **trusted;
	const char *tls_cert = NULL, *tls_key = NULL, *tls_ciphers = NULL;
	const char *run_user = NULL, *run_group = NULL, *file_root = NULL;
	size_t nlistens = 0, ntrusted = 0;
	int seed_listener = 0;
	int port = 110, foreground = 0, verbose = 0, ch, i, rv = 2;
	size_t nverbs = 0, nplugins = 0;
	static const int signums[3] = { SIGTERM, SIGINT, SIGHUP };

	/*
	 * Streaming a message allocates and frees output chunks of a few
	 * hundred KiB over and over; glibc's default 128 KiB trim threshold
	 * gives that memory back to the kernel each time and faults it in
	 * again (page faults were ~5% of a RETR).  Keep up to 4 MiB.
	 */
	(void)mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
	(void)mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	pop3d_options_init(&opts);
	control_options_init(&copts);

	verbs = calloc((size_t)argc + 1, sizeof(*verbs));
	plugins = calloc((size_t)argc + 1, sizeof(*plugins));
	listens = calloc((size_t)argc + 1, sizeof(*listens));
	trusted = calloc((size_t)argc + 1, sizeof(*trusted));
	if (verbs == NULL || plugins == NULL || listens == NULL || trusted == NULL) {
		free(verbs);
		free(plugins);
		free(listens);
		free(trusted);
		return 1;
	}
	while ((ch = getopt_long(argc, argv, "fv", daemon_longopts, NULL)) != -1) {
		const char *name = NULL;
		for (i = 0; daemon_longopts[i].name != NULL; i++)
			if (daemon_longopts[i].val == ch)
				name = daemon_longopts[i].name;
		switch (ch) {
		case OPT_ADDRESS:
			address = optarg;
			seed_listener = 1;
			break;
		case OPT_PORT:
			port = (int)daemon_number(name, optarg, 0, 65535);
			seed_listener = 1;
			break;
		case OPT_HOSTNAME:
			opts.hostname = optarg;
			break;
		case OPT_SERVER_VERSION:
			opts.version = optarg;
			break;
		case OPT_NO_GREETING:
			opts.handle_connects = 0;
			break;
		case OPT_ALIAS:
			opts.alias = optarg;
			break;
		case OPT_TIMEOUT:
			opts.timeout = (unsigned)daemon_number(name, optarg, 1, 86400);
			break;
		case OPT_RESPONSE_TIMEOUT:
			opts.response_timeout = (unsigned)daemon_number(name, optarg, 1, 86400);
			break;
		case OPT_MAX_LINE:
			opts.max_line = daemon_number(name, optarg, 16, 65536);
			break;
		case OPT_PLUGIN:
			plugins[nplugins++] = optarg;
			break;
		case OPT_LISTEN:
			listens[nlistens++] = optarg;
			break;
		case OPT_TLS_CERT:
			tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			tls_key = optarg;
			break;
		case OPT_TLS_CIPHERS:
			tls_ciphers = optarg;
			break;
		case OPT_TLS_HANDSHAKE_TIMEOUT:
			opts.tls_handshake_timeout = (unsigned)daemon_number(name, optarg, 1, 3600);
			break;
		case OPT_PROXY_TRUSTED:
			trusted[ntrusted++] = optarg;
			break;
		case OPT_AUTH_FAIL_DELAY:
			opts.auth_fail_delay_ms = (unsigned)daemon_number(name, optarg, 0, 60000);
			break;
		case OPT_MAX_AUTH_FAILURES:
			opts.max_auth_failures = (unsigned)daemon_number(name, optarg, 0, 1000);
			break;
		case OPT_SEND_FILE_ROOT:
			file_root = optarg;
			break;
		case OPT_USER:
			run_user = optarg;
			break;
		case OPT_GROUP:
			run_group = optarg;
			break;
		case OPT_PROXY_TIMEOUT:
			opts.proxy_timeout = (unsigned)daemon_number(name, optarg, 1, 3600);
			break;
		case OPT_MAX_AUTH_LINE:
			opts.max_auth_line = daemon_number(name, optarg, 16, 1 << 20);
			break;
		case OPT_PIPELINE_DEPTH:
			opts.pipeline_depth = (unsigned)daemon_number(name, optarg, 1, 64);
			break;
		case OPT_MAX_BAD_LINES:
			opts.max_bad_lines = (unsigned)daemon_number(name, optarg, 0, 1000000);
			break;
		case OPT_MAX_CLIENTS:
			opts.max_clients = (unsigned)daemon_number(name, optarg, 1, 10000000);
			break;
		case OPT_MAX_PER_ADDRESS:
			opts.max_per_address = (unsigned)daemon_number(name, optarg, 0, 10000000);
			break;
		case OPT_COMMAND:
			if (strlen(optarg) > 16 ||
			    optarg[strspn(optarg,
				"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")] !=
				'\0' ||
			    *optarg == '\0') {
				fprintf(stderr, "pop3d: --command: %s: not a verb\n", optarg);
				goto done;
			}
			verbs[nverbs++] = optarg;
			break;
		case OPT_CONTROL:
			copts.path = optarg;
			break;
		case OPT_CONTROL_MODE:
			copts.mode = (mode_t)strtoul(optarg, NULL, 8);
			if (*optarg == '\0' || copts.mode > 0777 ||
			    optarg[strspn(optarg, "01234567")] != '\0') {
				fprintf(stderr, "pop3d: --control-mode: %s: expected octal\n",
				    optarg);
				goto done;
			}
			break;
		case OPT_CONTROL_GROUP:
			copts.group = optarg;
			break;
		case OPT_CONTROL_ALLOW_UID:
			if (control_options_allow(&copts,
				(uid_t)daemon_number(name, optarg, 0, UINT_MAX - 1)) == -1) {
				rv = 1;
				goto done;
			}
			break;
		case OPT_MAX_CONTROLLERS:
			copts.max_controllers = (unsigned)daemon_number(name, optarg, 1, 100000);
			break;
		case OPT_CONTROL_MAX_LINE:
			copts.max_line = daemon_number(name, optarg, 1024, 1ULL << 30);
			break;
		case OPT_CONTROL_MAX_OUTPUT:
			copts.max_output = daemon_number(name, optarg, 65536, 1ULL << 34);
			break;
		case OPT_CONTROL_STALL:
			copts.stall_seconds = (unsigned)daemon_number(name, optarg, 1, 3600);
			break;
		case 'f':
			foreground = 1;
			break;
		case 'v':
			verbose++;
			break;
		case OPT_HELP:
			daemon_usage(stdout);
			rv = 0;
			goto done;
		case OPT_VERSION:
			printf("pop3d %s\n", PACKAGE_VERSION);
			rv = 0;
			goto done;
		default:
			daemon_usage(stderr);
			goto done;
		}
	}
	if (optind != argc) {
		daemon_usage(stderr);
		goto done;
	}
	opts.extra_verbs = verbs;
	log_init(1, verbose, "pop3d");
	signal(SIGPIPE, SIG_IGN);

	memset(&ds, 0, sizeof(ds));
	if ((ds.base = event_base_new()) == NULL)
		fatalx("cannot create the event base");
	if ((ds.srv = pop3d_new(ds.base, &opts)) == NULL)
		fatal("cannot create the server (greeting over 512 octets, or CR/LF in it?)");
	pop3d_set_stopped_cb(ds.srv, daemon_stopped, &ds);
	if ((tls_cert != NULL) != (tls_key != NULL))
		fatalx("--tls-cert and --tls-key go together");
	if (tls_cert != NULL && pop3d_tls_set(ds.srv, tls_cert, tls_key, tls_ciphers) == -1)
		fatalx("cannot load the TLS certificate and key");
	if (file_root != NULL && pop3d_send_file_root(ds.srv, file_root) == -1)
		fatal("--send-file-root %s", file_root);
	for (i = 0; (size_t)i < ntrusted; i++)
		if (pop3d_proxy_trust(ds.srv, trusted[i]) == -1)
			fatalx("--proxy-trusted %s: not an address or CIDR", trusted[i]);
	for (i = 0; (size_t)i < nlistens; i++)
		daemon_listen(ds.srv, listens[i]);
	if ((seed_listener || nlistens == 0) && pop3d_listen(ds.srv, address, port) == -1)
		fatal("cannot listen on %s port %d", address != NULL ? address : "*", port);
	for (i = 0; (size_t)i < nplugins; i++)
		if (daemon_plugin(ds.srv, plugins[i]) == -1)
			exit(1);
	if (copts.path != NULL && (ds.ctl = control_new(ds.srv, &copts)) == NULL)
		exit(1);
	if (run_group != NULL && run_user == NULL)
		fatalx("--group needs --user");
	if (run_user != NULL)
		daemon_drop(run_user, run_group);
	else if (geteuid() == 0)
		log_warnx("event=running-as-root: listeners and controllers are served by root; "
			  "use --user to drop privileges");
	if (setup != NULL)
		setup(ds.srv);
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(ds.base, signums[i], daemon_signal, &ds);
		evsignal_add(sigs[i], NULL);
	}
	if (!foreground) {
		if (daemon(1, 0) == -1)
			fatal("daemon");
		log_init(0, verbose, "pop3d");
		event_reinit(ds.base);
	}
	log_info("event=started alias=%s version=%s pid=%ld", opts.alias, PACKAGE_VERSION,
	    (long)getpid());
	event_base_dispatch(ds.base);
	log_info("event=stopped");
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	control_free(ds.ctl);
	pop3d_free(ds.srv);
	event_base_free(ds.base);
	rv = 0;
done:
	control_options_clear(&copts);
	free(verbs);
	free(plugins);
	free(listens);
	free(trusted);
	return rv;
}
