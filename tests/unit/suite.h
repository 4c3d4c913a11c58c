/* suite.h - the one main() every Check suite shares. */
#ifndef POP3D_TEST_SUITE_H
#define POP3D_TEST_SUITE_H

#include <check.h>

/* Run s with the default runner; the exit status says whether all passed. */
static inline int
suite_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

#endif
