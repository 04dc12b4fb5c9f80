// SPDX-License-Identifier: GPL-2.0
/*
 * Argument checking and permission tests for touched_sweep(2).
 *
 * A call that passes every check is answered by the tracking core, so
 * accepted() means it succeeded.  What valid calls do is tested in
 * touched_sweep_core_test.c.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <syscall.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/touched_sweep.h>

#include "../kselftest_harness.h"

#ifndef __NR_touched_sweep
#define __NR_touched_sweep 463
#endif

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif

#define TARGET_UID	1000
#define OTHER_UID	1001

static long sys_touched_sweep(int pidfd, struct touched_sweep_args *args)
{
	return syscall(__NR_touched_sweep, pidfd, args);
}

static int sys_pidfd_open(pid_t pid, unsigned int flags)
{
	return syscall(__NR_pidfd_open, pid, flags);
}

/* A call that passed every argument check, and succeeded. */
static bool accepted(long ret)
{
	return ret >= 0;
}

/* The call fails with @err, and nothing else. */
#define EXPECT_ERRNO(err, call) do {			\
	errno = 0;					\
	EXPECT_EQ(-1, (call));				\
	EXPECT_EQ(err, errno) {				\
		TH_LOG("errno %d (%s)", errno, strerror(errno));	\
	}						\
} while (0)

FIXTURE(args)
{
	int pidfd;
	long page;
	struct touched_range vec[4];
	struct touched_sweep_args args;
};

FIXTURE_SETUP(args)
{
	self->page = sysconf(_SC_PAGESIZE);
	self->pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self->pidfd, 0);

	memset(&self->args, 0, sizeof(self->args));
	self->args.size = sizeof(self->args);
	self->args.op = TOUCHED_SWEEP_OP_SWEEP;
	self->args.start = 0;
	self->args.end = 16 * self->page;
	self->args.vec = (uintptr_t)self->vec;
	self->args.vec_len = 4;

	if (sys_touched_sweep(self->pidfd, &self->args) < 0 && errno == ENOSYS)
		SKIP(return, "touched_sweep() not supported");
}

FIXTURE_TEARDOWN(args)
{
	close(self->pidfd);
}

TEST_F(args, valid_calls_accepted)
{
	void *page;

	self->args.flags = TOUCHED_SWEEP_CLEAR;
	EXPECT_TRUE(accepted(sys_touched_sweep(self->pidfd, &self->args)));

	/* An empty window and an empty vector are both valid. */
	self->args.start = self->args.end;
	self->args.vec = 0;
	self->args.vec_len = 0;
	EXPECT_TRUE(accepted(sys_touched_sweep(self->pidfd, &self->args)));

	/* Track and untrack one mapped page. */
	page = mmap(NULL, self->page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, page);
	memset(&self->args, 0, sizeof(self->args));
	self->args.size = sizeof(self->args);
	self->args.op = TOUCHED_SWEEP_OP_TRACK;
	self->args.start = (uintptr_t)page;
	self->args.end = (uintptr_t)page + self->page;
	EXPECT_TRUE(accepted(sys_touched_sweep(self->pidfd, &self->args)));
	self->args.op = TOUCHED_SWEEP_OP_UNTRACK;
	EXPECT_TRUE(accepted(sys_touched_sweep(self->pidfd, &self->args)));
	munmap(page, self->page);
}

TEST_F(args, bad_args_pointer)
{
	void *unmapped;

	EXPECT_ERRNO(EFAULT, sys_touched_sweep(self->pidfd, NULL));

	unmapped = mmap(NULL, self->page, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, unmapped);
	EXPECT_ERRNO(EFAULT, sys_touched_sweep(self->pidfd, unmapped));
	munmap(unmapped, self->page);
}

TEST_F(args, args_cut_by_unreadable_page)
{
	char *buf;
	struct touched_sweep_args *args;

	/* size is readable, the rest of the structure is not. */
	buf = mmap(NULL, 2 * self->page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, mprotect(buf + self->page, self->page, PROT_NONE));
	args = (void *)(buf + self->page - sizeof(__u64));
	args->size = sizeof(*args);
	EXPECT_ERRNO(EFAULT, sys_touched_sweep(self->pidfd, args));
	munmap(buf, 2 * self->page);
}

TEST_F(args, bad_size)
{
	self->args.size = 0;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	self->args.size = TOUCHED_SWEEP_ARGS_SIZE_VER0 - 1;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	self->args.size = self->page + 1;
	EXPECT_ERRNO(E2BIG, sys_touched_sweep(self->pidfd, &self->args));
	self->args.size = UINT64_MAX;
	EXPECT_ERRNO(E2BIG, sys_touched_sweep(self->pidfd, &self->args));
}

TEST_F(args, larger_struct_from_newer_caller)
{
	struct {
		struct touched_sweep_args args;
		__u64 future[3];
	} big;

	memset(&big, 0, sizeof(big));
	big.args = self->args;
	big.args.size = sizeof(big);

	/* Unknown trailing fields are fine while they are zero... */
	EXPECT_TRUE(accepted(sys_touched_sweep(self->pidfd, &big.args)));

	/* ...and rejected once one is set. */
	big.future[2] = 1;
	EXPECT_ERRNO(E2BIG, sys_touched_sweep(self->pidfd, &big.args));
}

TEST_F(args, bad_op_and_flags)
{
	self->args.op = 0;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	self->args.op = TOUCHED_SWEEP_OP_SWEEP + 1;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	self->args.op = UINT32_MAX;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));

	self->args.op = TOUCHED_SWEEP_OP_SWEEP;
	self->args.flags = ~TOUCHED_SWEEP_FLAGS_MASK;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	self->args.flags = 1U << 31;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
}

TEST_F(args, sweep_only_fields_on_other_ops)
{
	__u32 ops[] = { TOUCHED_SWEEP_OP_TRACK, TOUCHED_SWEEP_OP_UNTRACK };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		self->args.op = ops[i];
		self->args.vec = 0;
		self->args.vec_len = 0;
		self->args.flags = TOUCHED_SWEEP_CLEAR;
		EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
		self->args.flags = 0;
		self->args.vec = (uintptr_t)self->vec;
		EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
		self->args.vec = 0;
		self->args.vec_len = 1;
		EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	}
}

TEST_F(args, bad_range)
{
	__u64 end = self->args.end;

	self->args.start = 1;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	self->args.start = self->page / 2;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));

	self->args.start = 0;
	self->args.end = end - 1;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));

	/* end below start */
	self->args.start = 2 * self->page;
	self->args.end = self->page;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));

	/* beyond any user address, and wrapping */
	self->args.start = 0;
	self->args.end = 1ULL << 63;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	self->args.end = UINT64_MAX & ~(__u64)(self->page - 1);
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
	self->args.start = UINT64_MAX & ~(__u64)(self->page - 1);
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(self->pidfd, &self->args));
}

TEST_F(args, bad_vec)
{
	/* A kernel address, with and without room for ranges. */
	self->args.vec = 0xffff888000000000ULL;
	EXPECT_ERRNO(EFAULT, sys_touched_sweep(self->pidfd, &self->args));
	self->args.vec_len = 0;
	EXPECT_ERRNO(EFAULT, sys_touched_sweep(self->pidfd, &self->args));

	/* A length whose byte size overflows. */
	self->args.vec = (uintptr_t)self->vec;
	self->args.vec_len = UINT64_MAX / 2;
	EXPECT_ERRNO(EFAULT, sys_touched_sweep(self->pidfd, &self->args));
}

TEST_F(args, bad_pidfd)
{
	int fd;

	EXPECT_ERRNO(EBADF, sys_touched_sweep(-1, &self->args));
	EXPECT_ERRNO(EBADF, sys_touched_sweep(INT32_MAX, &self->args));

	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	EXPECT_ERRNO(EBADF, sys_touched_sweep(fd, &self->args));
	close(fd);
}

TEST_F(args, checks_run_in_documented_order)
{
	/* A bad size wins over a bad op, and a bad op over a bad pidfd. */
	self->args.size = 1;
	self->args.op = 0;
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(-1, &self->args));
	self->args.size = sizeof(self->args);
	EXPECT_ERRNO(EINVAL, sys_touched_sweep(-1, &self->args));

	/* A bad vector wins over a bad pidfd. */
	self->args.op = TOUCHED_SWEEP_OP_SWEEP;
	self->args.vec = 0xffff888000000000ULL;
	EXPECT_ERRNO(EFAULT, sys_touched_sweep(-1, &self->args));
}

TEST_F(args, exited_process)
{
	int status, pidfd;
	pid_t pid;

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(0);
	pidfd = sys_pidfd_open(pid, 0);
	ASSERT_GE(pidfd, 0);

	/* A zombie has no mm left to sweep... */
	ASSERT_EQ(0, waitid(P_PIDFD, pidfd, NULL, WEXITED | WNOWAIT));
	EXPECT_ERRNO(ESRCH, sys_touched_sweep(pidfd, &self->args));

	/* ...and a reaped process has no task either. */
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_ERRNO(ESRCH, sys_touched_sweep(pidfd, &self->args));
	close(pidfd);
}

/*
 * Start a target running as @uid and wait until it has dropped its
 * privileges.  A non-dumpable target refuses even callers of its own uid.
 */
static pid_t spawn_target(uid_t uid, int dumpable)
{
	int sync[2];
	char c;
	pid_t pid;

	if (pipe(sync))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(sync[0]);
		if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid) ||
		    prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0))
			_exit(1);
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(sync[1]);
	if (read(sync[0], &c, 1) != 1) {
		close(sync[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	close(sync[0]);
	return pid;
}

static void stop_target(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * In a child running with real uid @ruid and effective uid @euid, sweep
 * @target and return the errno, or 0 if the call was accepted.
 */
static int sweep_as(uid_t ruid, uid_t euid, pid_t target,
		    struct touched_sweep_args *args)
{
	int status, pidfd;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (setresgid(ruid, euid, euid) || setresuid(ruid, euid, euid))
			_exit(255);
		pidfd = sys_pidfd_open(target, 0);
		if (pidfd < 0)
			_exit(254);
		args->vec = 0;
		args->vec_len = 0;
		if (accepted(sys_touched_sweep(pidfd, args)))
			_exit(0);
		_exit(errno);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

TEST_F(args, permission)
{
	pid_t target;

	if (geteuid() != 0)
		SKIP(return, "needs root to switch between test users");

	target = spawn_target(TARGET_UID, 1);
	ASSERT_GT(target, 0);

	/* Another unprivileged user may not sweep the target. */
	EXPECT_EQ(EPERM, sweep_as(OTHER_UID, OTHER_UID, target, &self->args));
	/* The check uses real credentials, as process_vm_readv() does. */
	EXPECT_EQ(EPERM, sweep_as(OTHER_UID, TARGET_UID, target, &self->args));
	/* The target's own user may. */
	EXPECT_EQ(0, sweep_as(TARGET_UID, TARGET_UID, target, &self->args));
	/* So may root. */
	EXPECT_EQ(0, sweep_as(0, 0, target, &self->args));

	stop_target(target);
}

TEST_F(args, non_dumpable_target)
{
	pid_t target;

	if (geteuid() != 0)
		SKIP(return, "needs root to switch between test users");

	target = spawn_target(TARGET_UID, 0);
	ASSERT_GT(target, 0);
	EXPECT_EQ(EPERM, sweep_as(TARGET_UID, TARGET_UID, target, &self->args));
	stop_target(target);
}

TEST_HARNESS_MAIN
