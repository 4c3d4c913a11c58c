/* greeting.c - the greeting plugin. */
#include "config.h"

#include <stdio.h>

#include "greeting.h"
#include "pop3d.h"

/* Greet the client named by ARG0, then let everyone else see the event. */
static int
greeting_connection(struct pop3d *srv, struct pop3d_event *ev, void *arg)
{
	const struct pop3d_options *o = pop3d_get_options(srv);
	char line[GREETING_MAX];
	int n;

	(void)arg;
	n = snprintf(line, sizeof(line), GREETING_FORMAT, o->hostname, o->version);
	if (n > 0 && (size_t)n < sizeof(line))
		pop3d_send_to_client(srv, ev->client, 0, line, (size_t)n, 0);
	return POP3D_EAT_NONE;
}

/* Add the greeting plugin (pop3d_new, with handle_connects). */
int
greeting_install(struct pop3d *srv)
{
	static const char *const events[] = { "pop3d_connection" };

	if (pop3d_plugin_add(srv, GREETING_ALIAS, 0, greeting_connection, NULL) < 0)
		return -1;
	if (pop3d_plugin_register(srv, GREETING_ALIAS, events, 1, NULL) != 0)
		return -1;
	return 0;
}
