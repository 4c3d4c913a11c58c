/* badabi.c - a plugin built for another ABI: pop3d must refuse it. */
#include "config.h"

#include <stddef.h>

#include "pop3d.h"

static const struct pop3d_plugin_def badabi_def = { POP3D_ABI_VERSION + 998, "badabi", 0, NULL,
	NULL, NULL };

const struct pop3d_plugin_def *pop3d_plugin_entry(void);

const struct pop3d_plugin_def *
pop3d_plugin_entry(void)
{
	return &badabi_def;
}
