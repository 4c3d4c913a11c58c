/* stream.c - streaming a file as a multi-line answer, refilled as it drains. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "log.h"
#include "server.h"

/* Take fd (an open regular file, ours from now on) as the client's stream
 * of top lines (-1: all); it starts once output_stream() says so.  -1 when
 * out of memory (fd is closed then). */
int
stream_open(struct client *c, int fd, long top)
{
	if (c->stream == NULL && (c->stream = malloc(sizeof(*c->stream))) == NULL) {
		close(fd);
		return -1;
	}
	stuff_init(c->stream, top);
	c->stream_fd = fd;
	c->stream_ready = 0;
	return 0;
}

/* Stop streaming: the file is closed, nothing more of it is sent. */
void
stream_stop(struct client *c)
{
	if (c->stream_fd >= 0) {
		close(c->stream_fd);
		c->stream_fd = -1;
	}
	c->stream_ready = 0;
}

/* Feed the streamed file into the output until it holds enough; at its
 * end the answer is complete (srv->complete_cb, given by reply.c). */
void
stream_fill(struct client *c)
{
	struct evbuffer *out = conn_output(c);
	static char buf[CLIENT_STREAM_CHUNK]; /* one event loop: never reentered */
	ssize_t n;

	while (c->stream_fd >= 0 && c->stream_ready && !c->dead &&
	    evbuffer_get_length(out) < CLIENT_STREAM_FILL) {
		if (!stuff_wants_more(c->stream))
			n = 0;
		else if ((n = read(c->stream_fd, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			/* Part of the response is out: no fake terminator. */
			log_warn("client=%llu event=stream-error", (unsigned long long)c->id);
			conn_kill(c, "file read error");
			return;
		}
		if (n == 0) {
			stuff_finish(c->stream, out);
			close(c->stream_fd);
			c->stream_fd = -1;
			free(c->stream);
			c->stream = NULL;
			c->stream_ready = 0;
			if (c->closing) {
				/* disconnect arrived mid-stream; flush then close */
				break;
			}
			if (c->inflight)
				c->srv->complete_cb(c);
			break;
		}
		stuff_chunk(c->stream, buf, (size_t)n, out);
	}
}
