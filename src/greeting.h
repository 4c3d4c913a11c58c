/*
 * greeting.h - the core's own plugin: the greeting on pop3d_connection, as
 * POE::Component::Server::POP3 sends it from its POP3D_connection handler.
 */
#ifndef POP3D_GREETING_H
#define POP3D_GREETING_H

struct pop3d;

#define GREETING_ALIAS "greeting"
#define GREETING_FORMAT "+OK POP3 %s %s server ready"
/* RFC 1939: a response line is at most 512 octets with its CRLF. */
#define GREETING_MAX 512

int greeting_install(struct pop3d *);

#endif
