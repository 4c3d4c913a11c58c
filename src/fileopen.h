/*
 * fileopen.h - opening the files a handler asks pop3d to stream
 * (pop3d_send_file).  pop3d reads them with its own privileges, on behalf
 * of whatever controller named the path, so the open never blocks (a FIFO
 * or a device would freeze every client) and never follows a symlink as
 * the file itself; with a root directory set, the path must lie beneath
 * it with no symlink and no ".." anywhere on the way.
 */
#ifndef POP3D_FILEOPEN_H
#define POP3D_FILEOPEN_H

/* Longest path accepted, and most components walked beneath a root. */
#define FILEOPEN_MAX_PATH 4096
#define FILEOPEN_MAX_DEPTH 64

/* A confining directory: the path as given (absolute, no trailing '/')
 * and an open descriptor of it, or fd -1 for none. */
struct fileopen_root {
	int fd;
	char *path;
};

/* Open dir as the root; 0, or -1 with errno set. */
int fileopen_root_set(struct fileopen_root *, const char *dir);
void fileopen_root_clear(struct fileopen_root *);
/*
 * Open path for reading: non-blocking, no controlling terminal, not
 * through a symlink in its last component, and beneath root (when set)
 * without symlinks or "..".  Anything but a regular file is refused.
 * Returns the descriptor (blocking mode restored, close-on-exec), or -1
 * with errno set (ELOOP symlink, EXDEV outside the root, EINVAL not a
 * regular file, or the open's own error).
 */
int fileopen_read(const struct fileopen_root *, const char *path);

#endif
