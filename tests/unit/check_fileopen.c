/*
 * check_fileopen.c - the open behind pop3d_send_file, table-driven over a
 * directory tree made for the test: regular files open; FIFOs, devices,
 * directories and symlinks are refused without blocking; beneath a root,
 * "..", symlinked directories and paths outside are refused too.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "fileopen.h"
#include "suite.h"

static char top[64];

/* top/root/{msg,fifo,link-out,link-in,sub/msg,dirlink->..,uplink->top},
 * top/outside */
static void
setup(void)
{
	char p[256];
	FILE *f;

	snprintf(top, sizeof(top), "/tmp/check_fileopen.%ld", (long)getpid());
	ck_assert_int_eq(mkdir(top, 0700), 0);
#define MK(fmt) snprintf(p, sizeof(p), fmt, top)
	MK("%s/root");
	ck_assert_int_eq(mkdir(p, 0700), 0);
	MK("%s/root/sub");
	ck_assert_int_eq(mkdir(p, 0700), 0);
	MK("%s/root/msg");
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fputs("hello\n", f);
	fclose(f);
	MK("%s/root/sub/msg");
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fclose(f);
	MK("%s/outside");
	ck_assert_ptr_nonnull(f = fopen(p, "w"));
	fclose(f);
	MK("%s/root/fifo");
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	MK("%s/root/link-out");
	ck_assert_int_eq(symlink("../outside", p), 0);
	MK("%s/root/link-in");
	ck_assert_int_eq(symlink("msg", p), 0);
	MK("%s/root/uplink");
	ck_assert_int_eq(symlink(top, p), 0);
	MK("%s/root/sublink");
	ck_assert_int_eq(symlink("sub", p), 0);
#undef MK
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	ck_assert_int_eq(system(cmd), 0);
}

struct open_case {
	int rooted;	  /* beneath top/root */
	const char *path; /* a leading "%s" is top; a leading '=' means as is */
	int err;	  /* 0: opens */
};

static const struct open_case open_cases[] = {
	{ 0, "%s/root/msg", 0 },
	{ 0, "%s/root/sub/msg", 0 },
	{ 0, "%s/outside", 0 },
	{ 0, "%s/root/fifo", EINVAL },
	{ 0, "=/dev/null", EINVAL },
	{ 0, "%s/root", EINVAL },
	{ 0, "%s/root/link-in", ELOOP },
	{ 0, "%s/root/link-out", ELOOP },
	{ 0, "%s/root/sublink/msg", 0 }, /* without a root, directories may be links */
	{ 0, "%s/root/nope", ENOENT },
	{ 0, "=", EINVAL },
	{ 1, "%s/root/msg", 0 },
	{ 1, "=msg", 0 },
	{ 1, "=./sub//msg", 0 },
	{ 1, "%s/root/sub/msg", 0 },
	{ 1, "%s/root//sub/./msg", 0 },
	{ 1, "%s/root/fifo", EINVAL },
	{ 1, "%s/root/link-in", ELOOP },
	{ 1, "%s/root/link-out", ELOOP },
	{ 1, "%s/root/sublink/msg", ENOTDIR },
	{ 1, "%s/root/uplink/outside", ENOTDIR },
	{ 1, "%s/root/../outside", EXDEV },
	{ 1, "=../outside", EXDEV },
	{ 1, "=sub/../msg", EXDEV },
	{ 1, "%s/outside", EXDEV },
	{ 1, "%s/rootx/msg", EXDEV },
	{ 1, "%s/root", EXDEV },
	{ 1, "%s/root/", EINVAL },
	{ 1, "=/dev/null", EXDEV },
	{ 1, "%s/root/nope", ENOENT },
};

START_TEST(test_open)
{
	const struct open_case *oc = &open_cases[_i];
	struct fileopen_root r = { -1, NULL };
	char path[256], root[128];
	int fd;

	if (oc->path[0] == '=')
		snprintf(path, sizeof(path), "%s", oc->path + 1);
	else
		snprintf(path, sizeof(path), "%s%s", top, oc->path + 2);
	if (oc->rooted) {
		snprintf(root, sizeof(root), "%s/root/", top);
		ck_assert_int_eq(fileopen_root_set(&r, root), 0);
	}
	errno = 0;
	fd = fileopen_read(&r, path);
	if (oc->err == 0) {
		ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
		ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
		ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
		close(fd);
	} else {
		ck_assert_msg(fd == -1, "%s opened", path);
		ck_assert_msg(errno == oc->err, "%s: errno %d (%s), want %d", path, errno,
		    strerror(errno), oc->err);
	}
	fileopen_root_clear(&r);
}
END_TEST

START_TEST(test_root_set)
{
	struct fileopen_root r = { -1, NULL };
	char p[128];
	int fd;

	ck_assert_int_eq(fileopen_root_set(&r, "relative"), -1);
	snprintf(p, sizeof(p), "%s/outside", top);
	ck_assert_int_eq(fileopen_root_set(&r, p), -1);
	ck_assert_int_eq(r.fd, -1);
	snprintf(p, sizeof(p), "%s/root///", top);
	ck_assert_int_eq(fileopen_root_set(&r, p), 0);
	snprintf(p, sizeof(p), "%s/root", top);
	ck_assert_str_eq(r.path, p);
	ck_assert_int_eq(fileopen_root_set(&r, "/"), 0); /* replaces it */
	ck_assert_str_eq(r.path, "/");
	snprintf(p, sizeof(p), "%s/root/msg", top);
	fd = fileopen_read(&r, p); /* beneath "/": any path without symlinks */
	ck_assert_int_ge(fd, 0);
	close(fd);
	fileopen_root_clear(&r);
	ck_assert_int_eq(r.fd, -1);
}
END_TEST

static Suite *
fileopen_suite(void)
{
	Suite *s = suite_create("fileopen");
	TCase *tc = tcase_create("open");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_open, 0, (int)(sizeof(open_cases) / sizeof(open_cases[0])));
	tcase_add_test(tc, test_root_set);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return suite_run(fileopen_suite());
}
