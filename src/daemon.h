/*
 * daemon.h - the pop3d program as a function, so that test builds of the
 * daemon (tests/testd.c) run exactly the same start-up with extra handlers.
 */
#ifndef POP3D_DAEMON_H
#define POP3D_DAEMON_H

struct pop3d;

/* setup (may be NULL) runs after the server is created and listening. */
int daemon_main(int argc, char **argv, void (*setup)(struct pop3d *));

#endif
