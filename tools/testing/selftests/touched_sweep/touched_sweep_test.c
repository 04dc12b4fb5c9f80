// SPDX-License-Identifier: GPL-2.0
/*
 * Argument checking and permission tests for touched_sweep(2): who may
 * track whom, and that tracking never makes memory writable.
 *
 * A call that passes every check is answered by the tracking core, so
 * accepted() means it succeeded.  What valid calls do is tested in
 * touched_sweep_core_test.c.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <syscall.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/touched_sweep.h>

#include "../kselftest_harness.h"
#include "touched_sweep_helpers.h"

#ifndef __NR_mseal
#define __NR_mseal 462
#endif

#define TARGET_UID	1000
#define OTHER_UID	1001

/*
 * A copy of this program started with TARGET_ENV set to a file descriptor
 * is a target, not a test run: see exec_target_main().
 */
#define TARGET_ENV	"TOUCHED_SWEEP_TARGET_FD"

/* In the kernel half of the address space on x86-64 and arm64 alike. */
#define KERNEL_ADDR	0xffff888000000000ULL

static int sys_mseal(void *start, size_t len)
{
	return syscall(__NR_mseal, start, len, 0);
}

/* mseal() of nothing succeeds wherever mseal() exists (6.10 and later). */
static bool have_mseal(void)
{
	return sys_mseal((void *)sysconf(_SC_PAGESIZE), 0) == 0;
}

/*
 * Runs before the harness's main(), so that an executed copy of this
 * program (set-user-ID, say) can serve as a target: it maps a page, sends
 * the page's address down the inherited descriptor and waits to be killed.
 */
static void __attribute__((constructor)) exec_target_main(void)
{
	const char *env = getenv(TARGET_ENV);
	uint64_t addr;
	void *page;

	if (!env)
		return;
	page = mmap(NULL, sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		_exit(1);
	addr = (uintptr_t)page;
	if (write(atoi(env), &addr, sizeof(addr)) != sizeof(addr))
		_exit(1);
	for (;;)
		pause();
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

	if (!touched_sweep_present(self->pidfd))
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
	self->args.vec = KERNEL_ADDR;
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
	self->args.vec = KERNEL_ADDR;
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
 * A non-zero @ptracer is declared with PR_SET_PTRACER, for Yama.
 */
static pid_t spawn_target(uid_t uid, int dumpable, pid_t ptracer)
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
		if (ptracer && prctl(PR_SET_PTRACER, ptracer, 0, 0, 0))
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
 * Run @fn(@arg) in a child with real uid @ruid and effective uid @euid (the
 * same gids, no supplementary groups) and return what it returns, which
 * must fit in an exit status; -1 if the child could not be run.  The child
 * is dumpable, so that its own children are, too.
 */
static int as_user(uid_t ruid, uid_t euid, int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(ruid, euid, euid) ||
		    setresuid(ruid, euid, euid) ||
		    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
			_exit(255);
		_exit(fn(arg));
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/*
 * One call for as_user(): on @pidfd, or with @own_child on a child that
 * the caller starts for it, of the caller's own user.
 */
struct call {
	int pidfd;
	bool own_child;
	struct touched_sweep_args args;
};

/* The errno of the call, or 0 if it was accepted. */
static int do_call(void *arg)
{
	struct call *c = arg;
	int pidfd = c->pidfd, err = 0;
	pid_t child = 0;

	if (c->own_child) {
		child = fork();
		if (child < 0)
			return 254;
		if (child == 0) {
			pause();
			_exit(0);
		}
		pidfd = sys_pidfd_open(child, 0);
		if (pidfd < 0)
			err = 254;
	}
	if (!err && !accepted(sys_touched_sweep(pidfd, &c->args)))
		err = errno;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	return err;
}

/*
 * In a child running with real uid @ruid and effective uid @euid, sweep
 * @target and return the errno, or 0 if the call was accepted.
 */
static int sweep_as(uid_t ruid, uid_t euid, pid_t target,
		    struct touched_sweep_args *args)
{
	struct call c = { .pidfd = sys_pidfd_open(target, 0), .args = *args };
	int ret;

	if (c.pidfd < 0)
		return -1;
	c.args.vec = 0;
	c.args.vec_len = 0;
	ret = as_user(ruid, euid, do_call, &c);
	close(c.pidfd);
	return ret;
}

TEST_F(args, permission)
{
	pid_t target;

	if (geteuid() != 0)
		SKIP(return, "needs root to switch between test users");

	target = spawn_target(TARGET_UID, 1, 0);
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

	target = spawn_target(TARGET_UID, 0, 0);
	ASSERT_GT(target, 0);
	EXPECT_EQ(EPERM, sweep_as(TARGET_UID, TARGET_UID, target, &self->args));
	stop_target(target);
}

/* ---- Privileges and isolation ---------------------------------------- */

static const __u32 all_ops[] = {
	TOUCHED_SWEEP_OP_TRACK, TOUCHED_SWEEP_OP_UNTRACK, TOUCHED_SWEEP_OP_SWEEP,
};

static const char *op_name(__u32 op)
{
	return op == TOUCHED_SWEEP_OP_TRACK ? "TRACK" :
	       op == TOUCHED_SWEEP_OP_UNTRACK ? "UNTRACK" : "SWEEP";
}

/* Arguments for @op on [@start, @start + @len), with no output vector. */
static void set_op(struct touched_sweep_args *args, __u32 op,
		   const void *start, size_t len)
{
	memset(args, 0, sizeof(*args));
	args->size = sizeof(*args);
	args->op = op;
	args->start = (uintptr_t)start;
	args->end = (uintptr_t)start + len;
}

static long op_on(int pidfd, __u32 op, const void *start, size_t len)
{
	struct touched_sweep_args args;

	set_op(&args, op, start, len);
	return sys_touched_sweep(pidfd, &args);
}

/* A sweep of [@start, @start + @len) with @flags, into @vec. */
static long sweep_into(int pidfd, __u32 flags, const void *start, size_t len,
		       struct touched_range *vec, __u64 vec_len)
{
	struct touched_sweep_args args;

	set_op(&args, TOUCHED_SWEEP_OP_SWEEP, start, len);
	args.flags = flags;
	args.vec = (uintptr_t)vec;
	args.vec_len = vec_len;
	return sys_touched_sweep(pidfd, &args);
}

/* For expect_ops_as(): a child that the caller starts for the call. */
#define OWN_CHILD	-1

/*
 * As real uid @ruid and effective uid @euid, make each call on [@start,
 * @start + @len) of the process behind @pidfd (or of OWN_CHILD) and expect
 * @err from it, 0 meaning accepted.  The sweep clears and has room for
 * entries: the most a caller could get.
 */
static void expect_ops_as(struct __test_metadata *_metadata, int line,
			  int err, uid_t ruid, uid_t euid, int pidfd,
			  const void *start, size_t len)
{
	struct touched_range vec[4];
	struct call c = { .pidfd = pidfd, .own_child = pidfd == OWN_CHILD };
	unsigned int i;
	int got;

	for (i = 0; i < ARRAY_SIZE(all_ops); i++) {
		set_op(&c.args, all_ops[i], start, len);
		if (all_ops[i] == TOUCHED_SWEEP_OP_SWEEP) {
			c.args.flags = TOUCHED_SWEEP_CLEAR;
			c.args.vec = (uintptr_t)vec;
			c.args.vec_len = ARRAY_SIZE(vec);
		}
		got = as_user(ruid, euid, do_call, &c);
		EXPECT_EQ(err, got) {
			TH_LOG("line %d: %s as uid %u/%u%s: %s", line,
			       op_name(all_ops[i]), ruid, euid,
			       c.own_child ? " on its child" : "",
			       got == 0 ? "accepted" :
			       got > 0 && got < 254 ? strerror(got) :
			       "the caller failed");
		}
	}
}

#define EXPECT_OPS_AS(err, ruid, euid, pidfd, start, len)		\
	expect_ops_as(_metadata, __LINE__, err, ruid, euid, pidfd, start, len)

#define YAMA_SCOPE	"/proc/sys/kernel/yama/ptrace_scope"

/* Yama's ptrace_scope, or -1 without Yama. */
static int yama_scope(void)
{
	char buf[16] = "";
	int fd = open(YAMA_SCOPE, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -1;
}

/* Scope 3 cannot be left until reboot: never set it. */
static int set_yama_scope(int scope)
{
	char c = '0' + scope;
	int fd, ret;

	if (scope < 0 || scope > 2)
		return -1;
	fd = open(YAMA_SCOPE, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = write(fd, &c, 1) == 1 ? 0 : -1;
	close(fd);
	return ret;
}

/* The effective uid of @pid, from /proc/PID/status, or -1. */
static int proc_euid(pid_t pid)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	int ruid, euid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0)
		if (!strncmp(line, "Uid:", 4) &&
		    sscanf(line + 4, "%d %d", &ruid, &euid) == 2)
			break;
	free(line);
	fclose(f);
	return euid;
}

/*
 * The VMAs of @pid overlapping [@start, @end): how many carry the tracking
 * flag ("tt" in VmFlags of smaps), or -1 if smaps cannot be read.
 */
static int tracked_vmas(pid_t pid, const void *start, const void *end)
{
	unsigned long s, e, lo = (uintptr_t)start, hi = (uintptr_t)end;
	char path[64], *line = NULL;
	size_t cap = 0;
	bool in = false;
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2)
			in = s < hi && e > lo;
		else if (in && !strncmp(line, "VmFlags:", 8) &&
			 (strstr(line, " tt ") || strstr(line, " tt\n")))
			n++;
	}
	free(line);
	fclose(f);
	return n;
}

/*
 * The lines of /proc/@pid/maps overlapping [@start, @end), in @buf: how
 * many, or -1.
 */
static int maps_of(pid_t pid, const void *start, const void *end,
		   char *buf, size_t size)
{
	unsigned long s, e, lo = (uintptr_t)start, hi = (uintptr_t)end;
	char path[64], *line = NULL;
	size_t cap = 0, used = 0;
	int ret = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	buf[0] = '\0';
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2 || s >= hi || e <= lo)
			continue;
		if (used + strlen(line) >= size) {
			ret = -1;
			break;
		}
		used += snprintf(buf + used, size - used, "%s", line);
		ret++;
	}
	free(line);
	fclose(f);
	return ret;
}

/*
 * A copy of this program in /tmp, owned by root, with @mode: executed with
 * TARGET_ENV set it becomes a target, and with 04755 one that gained
 * privileges.  /tmp must be a file system that honours set-user-ID bits.
 */
static int copy_self(char *path, mode_t mode)
{
	int in, out, ret = -1;
	char buf[65536];
	ssize_t n;

	in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	out = mkostemp(path, O_CLOEXEC);
	if (in >= 0 && out >= 0) {
		while ((n = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, n) != n)
				break;
		/* chown() clears the set-user-ID bit: chmod() comes after. */
		if (!n && !fchown(out, 0, 0) && !fchmod(out, mode))
			ret = 0;
	}
	if (in >= 0)
		close(in);
	if (out >= 0) {
		close(out);
		if (ret)
			unlink(path);
	}
	return ret;
}

/*
 * A target that executes a program when told to.  Its pidfd is opened
 * before the exec, so that it names the same process before and after.
 */
struct exec_target {
	pid_t pid;
	int pidfd;
	int go;		/* a byte here: execute */
	int ready;	/* then the new program's page address comes here */
};

static int start_exec_target(struct exec_target *t, uid_t uid,
			     const char *path)
{
	int go[2], ready[2];
	char env[64], c;

	if (pipe2(go, O_CLOEXEC))
		return -1;
	/* The write end is inherited across the exec, by design. */
	if (pipe(ready))
		return -1;
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (t->pid == 0) {
		char *const argv[] = { (char *)path, NULL };
		char *const envp[] = { env, NULL };

		close(go[1]);
		close(ready[0]);
		snprintf(env, sizeof(env), TARGET_ENV "=%d", ready[1]);
		if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
		    setresuid(uid, uid, uid) ||
		    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
			_exit(1);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		execve(path, argv, envp);
		_exit(1);
	}
	close(go[0]);
	close(ready[1]);
	t->go = go[1];
	t->ready = ready[0];
	t->pidfd = sys_pidfd_open(t->pid, 0);
	return t->pidfd < 0 ? -1 : 0;
}

/* Execute, and return the address of the new program's page, or 0. */
static uint64_t exec_target_run(struct exec_target *t)
{
	uint64_t addr = 0;

	if (write(t->go, "x", 1) != 1 ||
	    read(t->ready, &addr, sizeof(addr)) != sizeof(addr))
		return 0;
	return addr;
}

static void stop_exec_target(struct exec_target *t)
{
	kill(t->pid, SIGKILL);
	waitpid(t->pid, NULL, 0);
	close(t->pidfd);
	close(t->go);
	close(t->ready);
}

/*
 * A target that tracks itself: it opts the PRIV_PAGES pages at @buf in
 * through its own pidfd, then for each byte on its command pipe writes that
 * page (unless TRACKER_PEEK) and answers with a test-only sweep of its own,
 * the count and then the entries.
 */
#define PRIV_PAGES	8
#define TRACKER_PEEK	0xff

struct tracker {
	pid_t pid;
	int cmd;
	int ack;
};

static void tracker_loop(char *buf, long page, int cmd, int ack)
{
	struct touched_range vec[PRIV_PAGES];
	int pidfd = sys_pidfd_open(getpid(), 0);
	unsigned char b;
	long n;

	if (pidfd < 0 ||
	    op_on(pidfd, TOUCHED_SWEEP_OP_TRACK, buf, PRIV_PAGES * page))
		_exit(1);
	while (read(cmd, &b, 1) == 1) {
		if (b < PRIV_PAGES)
			__atomic_store_n(buf + b * page, b, __ATOMIC_RELAXED);
		n = sweep_into(pidfd, 0, buf, PRIV_PAGES * page, vec, PRIV_PAGES);
		if (write(ack, &n, sizeof(n)) != sizeof(n) ||
		    (n > 0 && write(ack, vec, n * sizeof(*vec)) !=
			      (ssize_t)(n * sizeof(*vec))))
			_exit(1);
	}
	_exit(0);
}

static int start_tracker(struct tracker *t, uid_t uid, char *buf, long page)
{
	int cmd[2], ack[2];

	if (pipe2(cmd, O_CLOEXEC) || pipe2(ack, O_CLOEXEC))
		return -1;
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (t->pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
		    setresuid(uid, uid, uid) ||
		    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
			_exit(1);
		tracker_loop(buf, page, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	t->cmd = cmd[1];
	t->ack = ack[0];
	return 0;
}

/* Write page @b (or TRACKER_PEEK) and get the tracker's sweep, or -1. */
static long tracker_do(struct tracker *t, unsigned char b,
		       struct touched_range *vec)
{
	long n;

	if (write(t->cmd, &b, 1) != 1 ||
	    read(t->ack, &n, sizeof(n)) != sizeof(n) || n < 0 ||
	    n > PRIV_PAGES)
		return -1;
	if (n && read(t->ack, vec, n * sizeof(*vec)) !=
		 (ssize_t)(n * sizeof(*vec)))
		return -1;
	return n;
}

static void stop_tracker(struct tracker *t)
{
	kill(t->pid, SIGKILL);
	waitpid(t->pid, NULL, 0);
	close(t->cmd);
	close(t->ack);
}

/* For as_user(): open /proc/PID/smaps of *@arg; 0 or the errno. */
static int open_smaps(void *arg)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/smaps", *(pid_t *)arg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/*
 * For as_user(): make itself non-dumpable and make each call on its own
 * [*@arg, *@arg + PRIV_PAGES pages); the first errno, or 0.
 */
static int ops_on_self_non_dumpable(void *arg)
{
	size_t len = PRIV_PAGES * sysconf(_SC_PAGESIZE);
	unsigned int i;
	int pidfd;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return 254;
	pidfd = sys_pidfd_open(getpid(), 0);
	if (pidfd < 0)
		return 254;
	for (i = 0; i < ARRAY_SIZE(all_ops); i++)
		if (!accepted(op_on(pidfd, all_ops[i], *(char **)arg, len)))
			return errno;
	return 0;
}

/*
 * Tests that switch users.  Targets are forks, so @buf is mapped at the
 * same address in them.  Yama, if built in, is set to its plain ptrace
 * rules (scope 0) for the test and restored afterwards.
 */
FIXTURE(priv)
{
	long page;
	size_t len;
	char *buf;
	int yama;	/* the scope to restore, or -1 */
};

FIXTURE_SETUP(priv)
{
	int pidfd;
	bool have;

	self->yama = -1;
	self->page = sysconf(_SC_PAGESIZE);
	self->len = PRIV_PAGES * self->page;
	self->buf = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	memset(self->buf, 1, self->len);

	pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(pidfd, 0);
	have = touched_sweep_present(pidfd);
	close(pidfd);
	if (!have)
		SKIP(return, "touched_sweep() not supported");
	if (geteuid() != 0)
		SKIP(return, "needs root to switch between test users");

	self->yama = yama_scope();
	if (self->yama > 0)
		ASSERT_EQ(0, set_yama_scope(0));
}

FIXTURE_TEARDOWN(priv)
{
	if (self->yama >= 0 && yama_scope() != self->yama)
		EXPECT_EQ(0, set_yama_scope(self->yama));
}

/* Every operation, not only a sweep, needs the right to ptrace-attach. */
TEST_F(priv, other_user_all_ops)
{
	pid_t target = spawn_target(TARGET_UID, 1, 0);
	int pidfd;

	ASSERT_GT(target, 0);
	pidfd = sys_pidfd_open(target, 0);
	ASSERT_GE(pidfd, 0);

	EXPECT_OPS_AS(EPERM, OTHER_UID, OTHER_UID, pidfd, self->buf, self->len);
	/* Real credentials decide, as for process_vm_writev(). */
	EXPECT_OPS_AS(EPERM, OTHER_UID, TARGET_UID, pidfd, self->buf, self->len);
	EXPECT_OPS_AS(0, TARGET_UID, OTHER_UID, pidfd, self->buf, self->len);
	/* The same calls succeed for the target's user and for root. */
	EXPECT_OPS_AS(0, TARGET_UID, TARGET_UID, pidfd, self->buf, self->len);
	EXPECT_OPS_AS(0, 0, 0, pidfd, self->buf, self->len);

	close(pidfd);
	stop_target(target);
}

TEST_F(priv, non_dumpable_all_ops)
{
	pid_t target = spawn_target(TARGET_UID, 0, 0);
	int pidfd;

	ASSERT_GT(target, 0);
	pidfd = sys_pidfd_open(target, 0);
	ASSERT_GE(pidfd, 0);
	EXPECT_OPS_AS(EPERM, TARGET_UID, TARGET_UID, pidfd, self->buf, self->len);
	EXPECT_OPS_AS(0, 0, 0, pidfd, self->buf, self->len);
	close(pidfd);
	stop_target(target);

	/* A process may always operate on itself. */
	EXPECT_EQ(0, as_user(TARGET_UID, TARGET_UID, ops_on_self_non_dumpable,
			     &self->buf));
}

/* A set-user-ID root program run by TARGET_UID is out of its reach. */
TEST_F(priv, setuid_target)
{
	char path[] = "/tmp/touched_sweep_suid_XXXXXX";
	struct exec_target t;
	void *page;

	ASSERT_EQ(0, copy_self(path, 04755));
	ASSERT_EQ(0, start_exec_target(&t, TARGET_UID, path));
	page = (void *)(uintptr_t)exec_target_run(&t);
	unlink(path);
	ASSERT_NE(NULL, page);
	if (proc_euid(t.pid) != 0) {
		stop_exec_target(&t);
		SKIP(return, "/tmp ignores set-user-ID bits");
	}

	EXPECT_OPS_AS(EPERM, TARGET_UID, TARGET_UID, t.pidfd, page, self->page);
	EXPECT_OPS_AS(EPERM, OTHER_UID, OTHER_UID, t.pidfd, page, self->page);
	EXPECT_OPS_AS(0, 0, 0, t.pidfd, page, self->page);
	stop_exec_target(&t);
}

/*
 * The check is made on every call: a pidfd that gave access before its
 * process executed a set-user-ID program gives EPERM after.  An exec that
 * gains nothing keeps the access, which shows it is the set-user-ID bit.
 */
TEST_F(priv, exec_setuid_revokes_access)
{
	char suid[] = "/tmp/touched_sweep_suid_XXXXXX";
	char plain[] = "/tmp/touched_sweep_plain_XXXXXX";
	struct exec_target t, p;
	void *page;

	ASSERT_EQ(0, copy_self(suid, 04755));
	ASSERT_EQ(0, copy_self(plain, 0755));
	ASSERT_EQ(0, start_exec_target(&p, TARGET_UID, plain));
	ASSERT_EQ(0, start_exec_target(&t, TARGET_UID, suid));

	EXPECT_OPS_AS(0, TARGET_UID, TARGET_UID, p.pidfd, self->buf, self->len);
	page = (void *)(uintptr_t)exec_target_run(&p);
	ASSERT_NE(NULL, page);
	EXPECT_OPS_AS(0, TARGET_UID, TARGET_UID, p.pidfd, page, self->page);

	EXPECT_OPS_AS(0, TARGET_UID, TARGET_UID, t.pidfd, self->buf, self->len);
	page = (void *)(uintptr_t)exec_target_run(&t);
	unlink(suid);
	unlink(plain);
	ASSERT_NE(NULL, page);
	if (proc_euid(t.pid) != 0) {
		stop_exec_target(&t);
		stop_exec_target(&p);
		SKIP(return, "/tmp ignores set-user-ID bits");
	}
	EXPECT_OPS_AS(EPERM, TARGET_UID, TARGET_UID, t.pidfd, page, self->page);
	EXPECT_OPS_AS(0, 0, 0, t.pidfd, page, self->page);

	stop_exec_target(&t);
	stop_exec_target(&p);
}

/*
 * Yama scope 1: only an ancestor of the target, a process the target
 * declared with PR_SET_PTRACER (or a descendant of one), or CAP_SYS_PTRACE.
 * The callers are children of this process, siblings of the targets.
 */
TEST_F(priv, yama_relational)
{
	pid_t target, declared;
	int pidfd, dpidfd;

	if (self->yama < 0)
		SKIP(return, "no Yama (" YAMA_SCOPE ")");
	target = spawn_target(TARGET_UID, 1, 0);
	ASSERT_GT(target, 0);
	declared = spawn_target(TARGET_UID, 1, getpid());
	ASSERT_GT(declared, 0);
	pidfd = sys_pidfd_open(target, 0);
	dpidfd = sys_pidfd_open(declared, 0);
	ASSERT_GE(pidfd, 0);
	ASSERT_GE(dpidfd, 0);

	/* At scope 0 a same-user sibling may... */
	EXPECT_OPS_AS(0, TARGET_UID, TARGET_UID, pidfd, self->buf, self->len);
	ASSERT_EQ(0, set_yama_scope(1));
	/* ...at scope 1 it may not... */
	EXPECT_OPS_AS(EPERM, TARGET_UID, TARGET_UID, pidfd, self->buf, self->len);
	/* ...unless it is the target's ancestor or declared tracer. */
	EXPECT_OPS_AS(0, TARGET_UID, TARGET_UID, OWN_CHILD, self->buf, self->len);
	EXPECT_OPS_AS(0, TARGET_UID, TARGET_UID, dpidfd, self->buf, self->len);
	EXPECT_OPS_AS(0, 0, 0, pidfd, self->buf, self->len);

	close(pidfd);
	close(dpidfd);
	stop_target(target);
	stop_target(declared);
}

/* Yama scope 2: CAP_SYS_PTRACE only, even for the target's parent. */
TEST_F(priv, yama_admin_only)
{
	pid_t declared;
	int dpidfd;

	if (self->yama < 0)
		SKIP(return, "no Yama (" YAMA_SCOPE ")");
	declared = spawn_target(TARGET_UID, 1, getpid());
	ASSERT_GT(declared, 0);
	dpidfd = sys_pidfd_open(declared, 0);
	ASSERT_GE(dpidfd, 0);

	EXPECT_OPS_AS(0, TARGET_UID, TARGET_UID, OWN_CHILD, self->buf, self->len);
	ASSERT_EQ(0, set_yama_scope(2));
	EXPECT_OPS_AS(EPERM, TARGET_UID, TARGET_UID, OWN_CHILD, self->buf,
		      self->len);
	EXPECT_OPS_AS(EPERM, TARGET_UID, TARGET_UID, dpidfd, self->buf, self->len);
	EXPECT_OPS_AS(0, 0, 0, dpidfd, self->buf, self->len);

	close(dpidfd);
	stop_target(declared);
}

/*
 * Another user can neither see nor change what a process tracks: all its
 * calls fail, smaps stays closed to it, and afterwards the process's own
 * sweep reports the same pages and still sees new writes.
 */
TEST_F(priv, tracking_state_private)
{
	struct touched_range before[PRIV_PAGES], after[PRIV_PAGES];
	char *end = self->buf + self->len;
	struct tracker t;
	int pidfd;
	long n;

	ASSERT_EQ(0, start_tracker(&t, TARGET_UID, self->buf, self->page));
	EXPECT_LE(0, tracker_do(&t, 1, before));
	EXPECT_LE(0, tracker_do(&t, 2, before));
	n = tracker_do(&t, 5, before);
	ASSERT_EQ(2, n);
	EXPECT_EQ((uintptr_t)self->buf + self->page, before[0].start);
	EXPECT_EQ((uintptr_t)self->buf + 3 * self->page, before[0].end);
	EXPECT_EQ((uintptr_t)self->buf + 5 * self->page, before[1].start);
	EXPECT_EQ(1, tracked_vmas(t.pid, self->buf, end));

	pidfd = sys_pidfd_open(t.pid, 0);
	ASSERT_GE(pidfd, 0);
	EXPECT_OPS_AS(EPERM, OTHER_UID, OTHER_UID, pidfd, self->buf, self->len);
	/* Part of the range, too: no split at an edge. */
	EXPECT_OPS_AS(EPERM, OTHER_UID, OTHER_UID, pidfd,
		      self->buf + self->page, 2 * self->page);
	EXPECT_EQ(EACCES, as_user(OTHER_UID, OTHER_UID, open_smaps, &t.pid));
	EXPECT_EQ(0, as_user(TARGET_UID, TARGET_UID, open_smaps, &t.pid));
	close(pidfd);

	EXPECT_EQ(n, tracker_do(&t, TRACKER_PEEK, after));
	EXPECT_EQ(0, memcmp(before, after, n * sizeof(*after)));
	EXPECT_EQ(1, tracked_vmas(t.pid, self->buf, end));
	/* Still write-protected: a new write is reported. */
	EXPECT_EQ(3, tracker_do(&t, 7, after));
	EXPECT_EQ((uintptr_t)self->buf + 7 * self->page, after[2].start);
	stop_tracker(&t);
}

/* ---- Protection ------------------------------------------------------- */

static sigjmp_buf fault_env;

static void fault_handler(int sig)
{
	siglongjmp(fault_env, 1);
}

/* Does a store of @val to @p fault (SIGSEGV)? */
static bool store_faults(char *p, char val)
{
	struct sigaction sa = { .sa_handler = fault_handler }, old;

	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(fault_env, 1)) {
		sigaction(SIGSEGV, &old, NULL);
		return true;
	}
	__atomic_store_n(p, val, __ATOMIC_RELAXED);
	sigaction(SIGSEGV, &old, NULL);
	return false;
}

/* A FOLL_FORCE store through /proc/self/mem, as a debugger's: 1 or -1. */
static ssize_t poke_mem(char *p, char val)
{
	int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pwrite(fd, &val, 1, (uintptr_t)p);
	close(fd);
	return n;
}

/* Opting in must not make anything writable that was not. */
FIXTURE(prot)
{
	int pidfd;
	long page;
	struct touched_range vec[4];
};

FIXTURE_SETUP(prot)
{
	self->page = sysconf(_SC_PAGESIZE);
	self->pidfd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self->pidfd, 0);
	if (!touched_sweep_present(self->pidfd))
		SKIP(return, "touched_sweep() not supported");
}

FIXTURE_TEARDOWN(prot)
{
	close(self->pidfd);
}

TEST_F(prot, read_only_private_stays_read_only)
{
	const long n = 4;
	char *buf = mmap(NULL, n * self->page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p1, *p2;

	ASSERT_NE(MAP_FAILED, buf);
	p1 = buf + self->page;
	p2 = buf + 2 * self->page;
	memset(buf, 0x11, n * self->page);
	ASSERT_EQ(0, mprotect(buf, n * self->page, PROT_READ));
	ASSERT_EQ(0, op_on(self->pidfd, TOUCHED_SWEEP_OP_TRACK, buf,
			   n * self->page));

	EXPECT_TRUE(store_faults(buf, 0x22));
	EXPECT_EQ(0x11, buf[0]);
	/* A forced store (COW) marks its page, which stays read-only. */
	EXPECT_EQ(1, poke_mem(p1, 0x22));
	EXPECT_EQ(0x22, *p1);
	EXPECT_TRUE(store_faults(p1, 0x33));
	EXPECT_EQ(0x22, *p1);
	/* Stores that fault mark nothing. */
	ASSERT_EQ(1, sweep_into(self->pidfd, 0, buf, n * self->page,
				self->vec, 4));
	EXPECT_EQ((uintptr_t)p1, self->vec[0].start);
	EXPECT_EQ((uintptr_t)p2, self->vec[0].end);

	/* Nor does a clearing sweep open the page it clears. */
	ASSERT_EQ(1, sweep_into(self->pidfd, TOUCHED_SWEEP_CLEAR, buf,
				n * self->page, self->vec, 4));
	EXPECT_EQ((uintptr_t)p1, self->vec[0].start);
	EXPECT_TRUE(store_faults(p1, 0x33));
	EXPECT_TRUE(store_faults(p2, 0x33));
	EXPECT_EQ(0x22, *p1);
	EXPECT_EQ(0x11, *p2);

	EXPECT_EQ(0, sweep_into(self->pidfd, 0, buf, n * self->page,
				self->vec, 4));

	/* Writable again by mprotect(), as before tracking, and tracked. */
	ASSERT_EQ(0, mprotect(buf, n * self->page, PROT_READ | PROT_WRITE));
	EXPECT_FALSE(store_faults(p2, 0x33));
	EXPECT_EQ(0x33, *p2);
	ASSERT_EQ(1, sweep_into(self->pidfd, 0, buf, n * self->page,
				self->vec, 4));
	EXPECT_EQ((uintptr_t)p2, self->vec[0].start);
	munmap(buf, n * self->page);
}

TEST_F(prot, read_only_shared_file_stays_read_only)
{
	const long n = 4;
	char path[] = "/tmp/touched_sweep_ro_XXXXXX";
	size_t len = n * self->page;
	char *buf, *data, c;
	int fd, rofd;

	fd = mkostemp(path, O_CLOEXEC);
	ASSERT_LE(0, fd);
	data = malloc(len);
	ASSERT_NE(NULL, data);
	memset(data, 0x33, len);
	ASSERT_EQ((ssize_t)len, write(fd, data, len));
	free(data);
	rofd = open(path, O_RDONLY | O_CLOEXEC);
	unlink(path);
	close(fd);
	ASSERT_LE(0, rofd);

	buf = mmap(NULL, len, PROT_READ, MAP_SHARED, rofd, 0);
	ASSERT_NE(MAP_FAILED, buf);
	EXPECT_EQ(0x33, buf[self->page]);
	ASSERT_EQ(0, op_on(self->pidfd, TOUCHED_SWEEP_OP_TRACK, buf, len));

	EXPECT_TRUE(store_faults(buf, 0x44));
	EXPECT_TRUE(store_faults(buf + self->page, 0x44));
	EXPECT_ERRNO(EACCES, mprotect(buf, len, PROT_READ | PROT_WRITE));
	EXPECT_EQ(-1, poke_mem(buf + self->page, 0x44));
	EXPECT_EQ(0x33, buf[0]);
	EXPECT_EQ(0x33, buf[self->page]);
	ASSERT_EQ(1, pread(rofd, &c, 1, self->page));
	EXPECT_EQ(0x33, c);
	EXPECT_EQ(0, sweep_into(self->pidfd, 0, buf, len, self->vec, 4));
	munmap(buf, len);
	close(rofd);
}

/*
 * A sealed mapping cannot be tracked, alone or within a larger range, and
 * a refused call changes nothing: no split, no flag, still read-only.
 */
TEST_F(prot, sealed_mapping_not_tracked)
{
	const long n = 6;
	const struct {
		long first;
		long last;
	} ranges[] = { { 2, 4 }, { 1, 3 }, { 3, 5 }, { 0, 6 }, { 2, 3 } };
	size_t len = n * self->page;
	char before[2048], after[2048];
	char *buf, *sealed;
	unsigned int i;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 0x44, len);
	sealed = buf + 2 * self->page;
	ASSERT_EQ(0, mprotect(sealed, 2 * self->page, PROT_READ));
	if (!have_mseal())
		SKIP(return, "no mseal()");
	ASSERT_EQ(0, sys_mseal(sealed, 2 * self->page));
	/* Three VMAs: read-write, sealed read-only, read-write. */
	ASSERT_EQ(3, maps_of(getpid(), buf, buf + len, before, sizeof(before)));

	for (i = 0; i < ARRAY_SIZE(ranges); i++) {
		EXPECT_ERRNO(EPERM, op_on(self->pidfd, TOUCHED_SWEEP_OP_TRACK,
					  buf + ranges[i].first * self->page,
					  (ranges[i].last - ranges[i].first) *
					  self->page));
		ASSERT_EQ(3, maps_of(getpid(), buf, buf + len, after,
				     sizeof(after)));
		EXPECT_STREQ(before, after) {
			TH_LOG("pages [%ld, %ld)", ranges[i].first,
			       ranges[i].last);
		}
	}
	EXPECT_EQ(0, tracked_vmas(getpid(), buf, buf + len));
	EXPECT_TRUE(store_faults(sealed, 0x55));
	EXPECT_TRUE(store_faults(sealed + self->page, 0x55));
	EXPECT_EQ(0x44, sealed[0]);
	EXPECT_EQ(0x44, sealed[self->page]);

	/* The unsealed part can be tracked, which the checks above see. */
	ASSERT_EQ(0, op_on(self->pidfd, TOUCHED_SWEEP_OP_TRACK, buf,
			   2 * self->page));
	EXPECT_EQ(1, tracked_vmas(getpid(), buf, buf + len));
	EXPECT_EQ(0, tracked_vmas(getpid(), sealed, sealed + 2 * self->page));
}

/*
 * A tracked mapping sealed afterwards stays tracked: untracking would
 * change and split its VMA, which the seal forbids.  Its marks still work.
 */
TEST_F(prot, sealed_after_tracking_stays_tracked)
{
	const long n = 8;
	size_t len = n * self->page;
	char before[2048], after[2048];
	char *buf, *sealed;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 0x44, len);
	ASSERT_EQ(0, op_on(self->pidfd, TOUCHED_SWEEP_OP_TRACK, buf, len));
	sealed = buf + 2 * self->page;
	if (!have_mseal())
		SKIP(return, "no mseal()");
	ASSERT_EQ(0, sys_mseal(sealed, 4 * self->page));
	ASSERT_EQ(3, maps_of(getpid(), buf, buf + len, before, sizeof(before)));

	/* Inside, across an edge, and all of it: refused, nothing changed. */
	EXPECT_ERRNO(EPERM, op_on(self->pidfd, TOUCHED_SWEEP_OP_UNTRACK,
				  sealed + self->page, self->page));
	EXPECT_ERRNO(EPERM, op_on(self->pidfd, TOUCHED_SWEEP_OP_UNTRACK,
				  buf + self->page, 2 * self->page));
	EXPECT_ERRNO(EPERM, op_on(self->pidfd, TOUCHED_SWEEP_OP_UNTRACK,
				  buf, len));
	ASSERT_EQ(3, maps_of(getpid(), buf, buf + len, after, sizeof(after)));
	EXPECT_STREQ(before, after);
	EXPECT_EQ(3, tracked_vmas(getpid(), buf, buf + len));

	/* Tracking it again changes nothing and is allowed. */
	EXPECT_EQ(0, op_on(self->pidfd, TOUCHED_SWEEP_OP_TRACK, buf, len));
	/* Writes to the sealed part are still reported. */
	sealed[self->page] = 0x55;
	ASSERT_EQ(1, sweep_into(self->pidfd, TOUCHED_SWEEP_CLEAR, buf, len,
				self->vec, 4));
	EXPECT_EQ((uintptr_t)sealed + self->page, self->vec[0].start);
	EXPECT_EQ((uintptr_t)sealed + 2 * self->page, self->vec[0].end);
	/* The unsealed parts can still be untracked. */
	EXPECT_EQ(0, op_on(self->pidfd, TOUCHED_SWEEP_OP_UNTRACK, buf,
			   2 * self->page));
	EXPECT_EQ(2, tracked_vmas(getpid(), buf, buf + len));
}

/* F_SEAL_WRITE holds for a tracked read-only shared mapping of the memfd. */
TEST_F(prot, write_sealed_memfd_stays_read_only)
{
	const long n = 4;
	size_t len = n * self->page;
	char *buf, *data, c;
	int fd;

	fd = memfd_create("touched_sweep", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	ASSERT_LE(0, fd);
	data = malloc(len);
	ASSERT_NE(NULL, data);
	memset(data, 0x66, len);
	ASSERT_EQ((ssize_t)len, write(fd, data, len));
	free(data);
	ASSERT_EQ(0, fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
	buf = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, buf);
	EXPECT_EQ(0x66, buf[self->page]);
	ASSERT_EQ(0, op_on(self->pidfd, TOUCHED_SWEEP_OP_TRACK, buf, len));

	EXPECT_TRUE(store_faults(buf, 0x77));
	EXPECT_TRUE(store_faults(buf + self->page, 0x77));
	/* The seal took VM_MAYWRITE away: EACCES, as without tracking. */
	EXPECT_ERRNO(EACCES, mprotect(buf, len, PROT_READ | PROT_WRITE));
	EXPECT_EQ(-1, poke_mem(buf + self->page, 0x77));
	EXPECT_ERRNO(EPERM, pwrite(fd, "x", 1, 0));
	EXPECT_EQ(0x66, buf[0]);
	EXPECT_EQ(0x66, buf[self->page]);
	ASSERT_EQ(1, pread(fd, &c, 1, 0));
	EXPECT_EQ(0x66, c);
	EXPECT_EQ(0, sweep_into(self->pidfd, 0, buf, len, self->vec, 4));
	munmap(buf, len);
	close(fd);
}

/*
 * Random and boundary arguments: every size around the structure and the
 * page, unknown ops and flags, unaligned, reversed and overflowing ranges,
 * NULL, kernel, unmapped and read-only pointers, a vec that runs into an
 * unmapped page, pidfds of a live, a zombie and a reaped process, fds that
 * are not pidfds, and an output page another thread keeps unmapping.
 * Every call must succeed or fail with an errno the documentation lists;
 * the test runner fails the run on any kernel splat.  Afterwards tracking
 * must still work.  TOUCHED_SWEEP_FUZZ_CALLS sets the number of calls.
 */
#define FUZZ_PAGES	16

static uint64_t fuzz_state = 0x9E3779B97F4A7C15ULL;

static uint64_t fuzz_rand(void)
{
	fuzz_state ^= fuzz_state >> 12;
	fuzz_state ^= fuzz_state << 25;
	fuzz_state ^= fuzz_state >> 27;
	return fuzz_state * 0x2545F4914F6CDD1DULL;
}

static size_t fuzz_index(size_t n)
{
	return fuzz_rand() % n;
}

struct fuzz_unmapper {
	char *page;
	long page_size;
	int stop;
};

/* Unmap and map again the page some sweeps store their entries in. */
static void *fuzz_unmap_loop(void *arg)
{
	struct fuzz_unmapper *u = arg;

	while (!__atomic_load_n(&u->stop, __ATOMIC_RELAXED)) {
		munmap(u->page, u->page_size);
		mmap(u->page, u->page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	}
	return NULL;
}

static pid_t fuzz_child(bool exit_now)
{
	pid_t pid = fork();

	if (!pid) {
		if (!exit_now)
			pause();
		_exit(0);
	}
	return pid;
}

static bool documented_errno(int err)
{
	switch (err) {
	case EFAULT: case EINVAL: case E2BIG: case EBADF: case ESRCH:
	case EPERM: case ENOMEM:
		return true;
	}
	return false;
}

/*
 * The harness's 30 s default is too short for 10^5 calls on a slow
 * (emulated, debug) machine, and a soak makes many more: the fixture is
 * there for the timeout, which is generous because the run ends itself.
 */
FIXTURE(fuzz) {};
FIXTURE_SETUP(fuzz) {}
FIXTURE_TEARDOWN(fuzz) {}

TEST_F_TIMEOUT(fuzz, random_and_boundary_arguments, 7200)
{
	const long page = sysconf(_SC_PAGESIZE);
	const char *env = getenv("TOUCHED_SWEEP_FUZZ_CALLS");
	long calls = env ? atol(env) : 100000, i, ok = 0, bad = 0;
	long seen[256] = { 0 };
	struct fuzz_unmapper u = { .page_size = page };
	int self_fd, live_fd, zombie_fd, reaped_fd, null_fd, closed_fd;
	pid_t live, zombie, reaped;
	char *region, *ro, *hole, *argbuf, *vecbuf, *tail;
	struct touched_sweep_args check;
	struct touched_range vec[4];
	pthread_t thread;
	siginfo_t info;
	int distinct = 0, e;
	__u64 user_end;

	self_fd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self_fd, 0);
	if (!touched_sweep_present(self_fd))
		SKIP(return, "touched_sweep() not supported");
	user_end = touched_sweep_user_end(self_fd);

	/* Memory: tracked pages, a read-only page, a hole, buffers. */
	region = mmap(NULL, (FUZZ_PAGES + 8) * page, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, region);
	memset(region, 1, (FUZZ_PAGES + 8) * page);
	ro = region + FUZZ_PAGES * page;		/* read-only */
	hole = ro + page;				/* unmapped */
	argbuf = hole + page;				/* 2 pages */
	vecbuf = argbuf + 2 * page;			/* 1 page, then... */
	tail = vecbuf + page;				/* ...a hole */
	u.page = tail + page;				/* toggled */
	ASSERT_EQ(0, mprotect(ro, page, PROT_READ));
	ASSERT_EQ(0, munmap(hole, page));
	ASSERT_EQ(0, munmap(tail, page));

	/* Targets: live, zombie (exited, not reaped) and reaped children. */
	live = fuzz_child(false);
	zombie = fuzz_child(true);
	reaped = fuzz_child(true);
	ASSERT_GT(live, 0);
	ASSERT_GT(zombie, 0);
	ASSERT_GT(reaped, 0);
	live_fd = sys_pidfd_open(live, 0);
	zombie_fd = sys_pidfd_open(zombie, 0);
	reaped_fd = sys_pidfd_open(reaped, 0);
	ASSERT_GE(live_fd, 0);
	ASSERT_GE(zombie_fd, 0);
	ASSERT_GE(reaped_fd, 0);
	ASSERT_EQ(0, waitid(P_PID, zombie, &info, WEXITED | WNOWAIT));
	ASSERT_EQ(reaped, waitpid(reaped, NULL, 0));
	null_fd = open("/dev/null", O_RDONLY);
	ASSERT_GE(null_fd, 0);
	closed_fd = dup(null_fd);
	close(closed_fd);

	ASSERT_EQ(0, pthread_create(&thread, NULL, fuzz_unmap_loop, &u));

	for (i = 0; i < calls; i++) {
		const int fds[] = { self_fd, self_fd, self_fd, live_fd,
				    zombie_fd, reaped_fd, null_fd, closed_fd,
				    -1, 1 << 20 };
		const uint64_t sizes[] = { 0, 1, 8, 55, 56, 57, 63, 64, 72,
					   page - 1, page, page + 1, 2 * page,
					   fuzz_rand() % (2 * page) };
		const uint32_t ops[] = { 0, TOUCHED_SWEEP_OP_TRACK,
					 TOUCHED_SWEEP_OP_UNTRACK,
					 TOUCHED_SWEEP_OP_SWEEP,
					 TOUCHED_SWEEP_OP_SWEEP, 4, ~0U,
					 (uint32_t)fuzz_rand() };
		const uint32_t flags[] = { 0, 0, TOUCHED_SWEEP_CLEAR, 2,
					   (uint32_t)fuzz_rand() };
		const uint64_t addrs[] = {
			(uintptr_t)region,
			(uintptr_t)region + (fuzz_rand() % FUZZ_PAGES) * page,
			(uintptr_t)region + (fuzz_rand() % FUZZ_PAGES) * page,
			(uintptr_t)region + FUZZ_PAGES * page,
			(uintptr_t)hole, (uintptr_t)hole + page,
			(uintptr_t)region + 1, (uintptr_t)region + page / 2,
			0, page, ~0ULL, ~0ULL - page + 1, user_end,
			user_end + page, user_end - page, KERNEL_ADDR,
			fuzz_rand(),
		};
		const uint64_t vecs[] = {
			0, (uintptr_t)vec, (uintptr_t)vec,
			(uintptr_t)tail - sizeof(struct touched_range),
			(uintptr_t)tail - 2 * sizeof(struct touched_range) + 8,
			(uintptr_t)ro, (uintptr_t)hole, (uintptr_t)u.page,
			(uintptr_t)vec + 1, KERNEL_ADDR, ~0ULL,
			fuzz_rand(),
		};
		const uint64_t lens[] = { 0, 1, 2, 4, 4, 170, 1ULL << 40,
					  ~0ULL, ~0ULL / 24 + 1, fuzz_rand() };
		/* Where the structure itself lies. */
		char *const places[] = { argbuf, argbuf, argbuf,
					 argbuf + 2 * page - 16, ro, hole,
					 NULL, (char *)KERNEL_ADDR };
		struct touched_sweep_args *args = (void *)argbuf;
		char *place = places[fuzz_index(ARRAY_SIZE(places))];
		uint64_t a = addrs[fuzz_index(ARRAY_SIZE(addrs))];
		uint64_t b = addrs[fuzz_index(ARRAY_SIZE(addrs))];
		long ret;

		memset(argbuf, 0, 2 * page);
		if (fuzz_rand() % 2) {
			/* Anything at all. */
			args->size = sizes[fuzz_index(ARRAY_SIZE(sizes))];
			args->op = ops[fuzz_index(ARRAY_SIZE(ops))];
			args->flags = flags[fuzz_index(ARRAY_SIZE(flags))];
			args->start = a < b || fuzz_rand() % 8 == 0 ? a : b;
			args->end = args->start == a ? b : a;
			if (args->op == TOUCHED_SWEEP_OP_SWEEP ||
			    fuzz_rand() % 8 == 0) {
				args->vec = vecs[fuzz_index(ARRAY_SIZE(vecs))];
				args->vec_len = lens[fuzz_index(ARRAY_SIZE(lens))];
			}
			/* Now and then, bytes past the structure are set. */
			if (fuzz_rand() % 8 == 0)
				argbuf[sizeof(*args) + fuzz_rand() % 64] = 1;
		} else {
			/*
			 * A call that passes the argument checks, so that it
			 * reaches the pidfd and the tracking core: ranges in
			 * and around the region, vecs good and bad.
			 */
			uint64_t lo = fuzz_rand() % (FUZZ_PAGES + 2);
			uint64_t hi = lo + fuzz_rand() % (FUZZ_PAGES + 2 - lo);

			place = argbuf;
			args->size = sizeof(*args);
			args->op = TOUCHED_SWEEP_OP_TRACK + fuzz_rand() % 3;
			args->start = (uintptr_t)region + lo * page;
			args->end = (uintptr_t)region + hi * page;
			if (args->op == TOUCHED_SWEEP_OP_SWEEP) {
				args->flags = fuzz_rand() % 2;
				args->vec = vecs[fuzz_index(ARRAY_SIZE(vecs))];
				args->vec_len = 1 + fuzz_rand() % 4;
			}
			/* Sometimes write to the region first. */
			if (fuzz_rand() % 2)
				region[(fuzz_rand() % FUZZ_PAGES) * page] = 3;
		}
		/* A copy at the end of the buffer runs into the next page. */
		if (place == argbuf + 2 * page - 16)
			memcpy(place, args, 16);

		errno = 0;
		ret = sys_touched_sweep(fds[fuzz_index(ARRAY_SIZE(fds))], (void *)place);
		if (ret >= 0) {
			ok++;
			continue;
		}
		e = errno;
		if (e > 0 && e < 256 && !seen[e]++)
			distinct++;
		if (!documented_errno(e) && bad++ < 10)
			TH_LOG("call %ld: %s: size %llu op %u flags %u vec_len %llu",
			       i, strerror(e), (unsigned long long)args->size,
			       args->op, args->flags,
			       (unsigned long long)args->vec_len);
	}
	__atomic_store_n(&u.stop, 1, __ATOMIC_RELAXED);
	pthread_join(thread, NULL);

	TH_LOG("%ld calls: %ld succeeded, %d distinct errnos, %ld undocumented",
	       calls, ok, distinct, bad);
	for (e = 1; e < 256; e++)
		if (seen[e])
			TH_LOG("  %-8s %ld", strerrorname_np(e), seen[e]);
	EXPECT_EQ(0, bad);
	EXPECT_LT(0, ok);
	EXPECT_LE(6, distinct);

	/* Tracking still works: opt the region in again, write, sweep. */
	memset(&check, 0, sizeof(check));
	check.size = sizeof(check);
	check.op = TOUCHED_SWEEP_OP_TRACK;
	check.start = (uintptr_t)region;
	check.end = (uintptr_t)region + FUZZ_PAGES * page;
	ASSERT_EQ(0, sys_touched_sweep(self_fd, &check));
	check.op = TOUCHED_SWEEP_OP_SWEEP;
	check.flags = TOUCHED_SWEEP_CLEAR;
	check.vec = (uintptr_t)vec;
	check.vec_len = ARRAY_SIZE(vec);
	while (sys_touched_sweep(self_fd, &check) > 0 &&
	       check.walk_end < check.end)
		check.start = check.walk_end;
	check.start = (uintptr_t)region;
	region[3 * page] = 2;
	ASSERT_EQ(1, sys_touched_sweep(self_fd, &check));
	EXPECT_EQ((uintptr_t)region + 3 * page, vec[0].start);
	EXPECT_EQ((uintptr_t)region + 4 * page, vec[0].end);
	EXPECT_EQ(TOUCHED_RANGE_TOUCHED, vec[0].flags);

	kill(live, SIGKILL);
	waitpid(live, NULL, 0);
	waitpid(zombie, NULL, 0);
}

TEST_HARNESS_MAIN
