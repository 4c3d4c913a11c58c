/* main.c - the pop3d daemon. */
#include "config.h"

#include <stddef.h>

#include "daemon.h"

int
main(int argc, char **argv)
{
	return daemon_main(argc, argv, NULL);
}
