/*
 * fileopen.c - the open behind pop3d_send_file: never blocking, never
 * through a symlink, optionally confined beneath one directory.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "fileopen.h"

#define FILEOPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW)

int
fileopen_root_set(struct fileopen_root *r, const char *dir)
{
	size_t len;
	int fd;

	if (dir == NULL || dir[0] != '/' || (len = strlen(dir)) >= FILEOPEN_MAX_PATH) {
		errno = EINVAL;
		return -1;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	fileopen_root_clear(r);
	if ((r->path = strdup(dir)) == NULL) {
		close(fd);
		return -1;
	}
	while (len > 1 && r->path[len - 1] == '/')
		r->path[--len] = '\0';
	r->fd = fd;
	return 0;
}

void
fileopen_root_clear(struct fileopen_root *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->path);
	r->path = NULL;
}

/* Keep fd only if it is a regular file, in blocking mode; else close it. */
static int
fileopen_regular(int fd)
{
	struct stat sb;
	int fl;

	if (fd == -1)
		return -1;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	/* Regular files never block; the stream reads with plain read(2). */
	if ((fl = fcntl(fd, F_GETFL)) != -1)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

/* The part of path below the root, or NULL when path is not beneath it. */
static const char *
fileopen_below(const struct fileopen_root *r, const char *path)
{
	size_t n = strlen(r->path);

	if (path[0] != '/')
		return path; /* relative to the root */
	if (n == 1)
		return path + 1; /* the root is "/" */
	if (strncmp(path, r->path, n) != 0 || path[n] != '/')
		return NULL;
	return path + n + 1;
}

/* Walk rel beneath the root one component at a time, each directory
 * opened with O_NOFOLLOW, so no symlink and no ".." is ever crossed. */
static int
fileopen_beneath(const struct fileopen_root *r, const char *rel)
{
	char buf[FILEOPEN_MAX_PATH], *comp, *next;
	int dir, fd, depth = 0;

	if (strlen(rel) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, rel, strlen(rel) + 1);
	if ((dir = dup(r->fd)) == -1)
		return -1;
	for (comp = buf;; comp = next) {
		while (*comp == '/')
			comp++;
		if ((next = strchr(comp, '/')) != NULL)
			*next++ = '\0';
		while (next != NULL && *next == '/')
			next++;
		if (next != NULL && *next == '\0')
			next = NULL; /* a trailing '/': last component */
		if (*comp == '\0' || strcmp(comp, ".") == 0) {
			if (next == NULL)
				break;
			continue;
		}
		if (strcmp(comp, "..") == 0 || ++depth > FILEOPEN_MAX_DEPTH) {
			close(dir);
			errno = EXDEV;
			return -1;
		}
		if (next == NULL) {
			fd = openat(dir, comp, FILEOPEN_FLAGS);
			close(dir);
			return fileopen_regular(fd);
		}
		fd = openat(dir, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(dir);
		if (fd == -1)
			return -1;
		dir = fd;
	}
	close(dir);
	errno = EINVAL; /* the root itself, not a file */
	return -1;
}

int
fileopen_read(const struct fileopen_root *r, const char *path)
{
	const char *rel;

	if (path == NULL || *path == '\0' || strlen(path) >= FILEOPEN_MAX_PATH) {
		errno = EINVAL;
		return -1;
	}
	if (r == NULL || r->fd < 0)
		return fileopen_regular(open(path, FILEOPEN_FLAGS));
	if ((rel = fileopen_below(r, path)) == NULL) {
		errno = EXDEV;
		return -1;
	}
	return fileopen_beneath(r, rel);
}
