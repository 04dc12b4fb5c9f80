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
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <syscall.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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

/*
 * Does this kernel have touched_sweep()?  Only touched_sweep() answers a
 * sweep of an empty window with 0 and stores the window's start as
 * walk_end; another system call with this number must never see the
 * tests' arguments.
 */
static bool have_touched_sweep(int pidfd, long page)
{
	struct touched_sweep_args args = {
		.size = sizeof(args), .op = TOUCHED_SWEEP_OP_SWEEP,
		.start = page, .end = page,
	};

	return sys_touched_sweep(pidfd, &args) == 0 &&
	       args.walk_end == (__u64)page;
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

	if (!have_touched_sweep(self->pidfd, self->page))
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

TEST(fuzz)
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

	self_fd = sys_pidfd_open(getpid(), 0);
	ASSERT_GE(self_fd, 0);
	if (!have_touched_sweep(self_fd, page))
		SKIP(return, "touched_sweep() not supported");

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
			0, page, ~0ULL, ~0ULL - page + 1, 1ULL << 47,
			(1ULL << 47) - page, 0xffff888000000000ULL,
			fuzz_rand(),
		};
		const uint64_t vecs[] = {
			0, (uintptr_t)vec, (uintptr_t)vec,
			(uintptr_t)tail - sizeof(struct touched_range),
			(uintptr_t)tail - 2 * sizeof(struct touched_range) + 8,
			(uintptr_t)ro, (uintptr_t)hole, (uintptr_t)u.page,
			(uintptr_t)vec + 1, 0xffff888000000000ULL, ~0ULL,
			fuzz_rand(),
		};
		const uint64_t lens[] = { 0, 1, 2, 4, 4, 170, 1ULL << 40,
					  ~0ULL, ~0ULL / 24 + 1, fuzz_rand() };
		/* Where the structure itself lies. */
		char *const places[] = { argbuf, argbuf, argbuf,
					 argbuf + 2 * page - 16, ro, hole,
					 NULL, (char *)0xffff888000000000ULL };
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
