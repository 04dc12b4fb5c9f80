// SPDX-License-Identifier: GPL-2.0
/*
 * PID 1 of the arm64 harness guest (tools/testing/harness/arm64.py).
 *
 * The guest has no root file system: the initramfs holds this program as
 * /init and the touched_sweep kselftests in /selftests, all static.  It
 * mounts what the tests need, runs every program in /selftests in name
 * order with a time limit each, and powers the machine off.  The tests
 * write their TAP output straight to the console; the host finds each
 * test's output between the "harness-arm64: begin" and "harness-arm64: end"
 * lines and the exit statuses on the final "harness-arm64: done" line.
 *
 * Installed as /bin/sleep too, it sleeps: one core test executes
 * /bin/sleep to replace a tracked process's mm, and would skip without it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#define MARK		"harness-arm64:"
#define SELFTEST_DIR	"/selftests"
#define MAX_TESTS	32
/* Seconds per test unless the kernel command line says harness_timeout=N. */
#define DEFAULT_TIMEOUT	600
/* A stress run long enough to mean something, short enough for TCG. */
#define STRESS_WRITES	"200000"
#define YAMA_SCOPE	"/proc/sys/kernel/yama/ptrace_scope"

struct outcome {
	char name[NAME_MAX + 1];
	char status[32];
};

static void say(const char *fmt, ...)
{
	va_list ap;

	printf(MARK " ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	/* Before every fork too, so that no child inherits pending output. */
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void mount_fs(const char *type, const char *dir, unsigned long flags,
		     const char *data)
{
	if (mkdir(dir, 0755) && errno != EEXIST)
		say("mkdir %s: %s", dir, strerror(errno));
	if (mount(type, dir, type, flags, data))
		say("mount %s on %s: %s", type, dir, strerror(errno));
}

/*
 * The kernel opens /dev/console from the initramfs for PID 1; should that
 * have failed, open it from devtmpfs so that the output is not lost.
 */
static void ensure_console(void)
{
	int fd;

	if (fcntl(STDOUT_FILENO, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR);
	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

static void setup(void)
{
	const unsigned long safe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	int fd;

	mount_fs("proc", "/proc", safe, NULL);
	mount_fs("sysfs", "/sys", safe, NULL);
	mount_fs("devtmpfs", "/dev", MS_NOSUID, "mode=0755");
	ensure_console();
	mount_fs("debugfs", "/sys/kernel/debug", safe, NULL);
	/*
	 * Not nosuid: the privilege tests copy themselves to /tmp as a
	 * set-user-ID program and execute the copy.
	 */
	mount_fs("tmpfs", "/tmp", MS_NODEV, "mode=1777");

	/*
	 * Yama starts at ptrace_scope 1.  The tests expect the plain ptrace
	 * rules and raise the scope themselves when they test it.
	 */
	fd = open(YAMA_SCOPE, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "0", 1) != 1)
			say("cannot reset %s: %s", YAMA_SCOPE, strerror(errno));
		close(fd);
	}

	setenv("PATH", "/bin", 1);
	setenv("HOME", "/tmp", 1);
	setenv("TMPDIR", "/tmp", 1);
	/* The kernel command line may ask for a longer stress run. */
	setenv("TOUCHED_SWEEP_STRESS_WRITES", STRESS_WRITES, 0);
}

static int is_test(const struct dirent *d)
{
	char path[PATH_MAX];
	struct stat st;

	if (d->d_name[0] == '.')
		return 0;
	snprintf(path, sizeof(path), SELFTEST_DIR "/%s", d->d_name);
	return !stat(path, &st) && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

/* Reap every exited child; true once @pid is among them, with @status. */
static int reap(pid_t pid, int *status)
{
	int found = 0, st;
	pid_t w;

	while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
		if (w == pid) {
			*status = st;
			found = 1;
		}
	}
	return found;
}

/*
 * Run one test in a process group of its own, so that a timeout also
 * kills the processes it forked.  Describe how it ended in @out.
 */
static int run_test(const char *name, unsigned int timeout,
		    const sigset_t *sigchld, struct outcome *out)
{
	char path[PATH_MAX];
	double start = now(), left;
	struct timespec ts;
	int status = 0, done;
	pid_t pid;

	snprintf(path, sizeof(path), SELFTEST_DIR "/%s", name);
	snprintf(out->name, sizeof(out->name), "%s", name);
	say("begin %s", name);
	pid = fork();
	if (pid < 0) {
		snprintf(out->status, sizeof(out->status), "fork-failed");
		say("end %s status=%s seconds=0.0", name, out->status);
		return -1;
	}
	if (!pid) {
		setpgid(0, 0);
		sigprocmask(SIG_UNBLOCK, sigchld, NULL);
		if (chdir("/tmp"))
			_exit(126);
		execl(path, name, (char *)NULL);
		printf("exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	/* Also in the parent: the group must exist before any kill(-pid). */
	setpgid(pid, pid);

	for (;;) {
		done = reap(pid, &status);
		if (done)
			break;
		left = start + timeout - now();
		if (left <= 0)
			break;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - ts.tv_sec) * 1e9);
		sigtimedwait(sigchld, NULL, &ts);
	}
	/* What the test left behind, or the whole test on a timeout. */
	kill(-pid, SIGKILL);
	if (!done) {
		waitpid(pid, &status, 0);
		snprintf(out->status, sizeof(out->status), "timeout");
	} else if (WIFEXITED(status)) {
		snprintf(out->status, sizeof(out->status), "exit:%d",
			 WEXITSTATUS(status));
	} else {
		snprintf(out->status, sizeof(out->status), "signal:%d",
			 WTERMSIG(status));
	}
	say("end %s status=%s seconds=%.1f", name, out->status, now() - start);
	return done && WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	/* PID 1 must never exit: the kernel would panic. */
	for (;;)
		pause();
}

static int sleep_main(int argc, char **argv)
{
	unsigned int secs = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;

	while (secs)
		secs = sleep(secs);
	return 0;
}

int main(int argc, char **argv)
{
	static struct outcome outcomes[MAX_TESTS];
	const char *base = strrchr(argv[0], '/');
	char line[4096] = "";
	unsigned int timeout = DEFAULT_TIMEOUT;
	struct dirent **tests;
	struct utsname uts;
	sigset_t sigchld;
	int n, i, failed = 0;
	size_t len = 0;

	base = base ? base + 1 : argv[0];
	if (!strcmp(base, "sleep"))
		return sleep_main(argc, argv);
	if (getpid() != 1) {
		fprintf(stderr, "%s: runs only as PID 1 of the test guest\n",
			argv[0]);
		return 2;
	}

	setup();
	if (getenv("harness_timeout"))
		timeout = strtoul(getenv("harness_timeout"), NULL, 10);
	uname(&uts);
	say("kernel %s %s, %ld CPUs, %u s per test", uts.release, uts.machine,
	    sysconf(_SC_NPROCESSORS_ONLN), timeout);

	/* SIGCHLD is taken with sigtimedwait(), not by a handler. */
	sigemptyset(&sigchld);
	sigaddset(&sigchld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigchld, NULL);

	n = scandir(SELFTEST_DIR, &tests, is_test, alphasort);
	if (n < 0) {
		say("cannot list " SELFTEST_DIR ": %s", strerror(errno));
		n = 0;
	}
	if (n > MAX_TESTS) {
		say("only the first %d of %d tests run", MAX_TESTS, n);
		n = MAX_TESTS;
	}
	for (i = 0; i < n; i++) {
		if (run_test(tests[i]->d_name, timeout, &sigchld, &outcomes[i]))
			failed++;
		len += snprintf(line + len, sizeof(line) - len, " %s=%s",
				outcomes[i].name, outcomes[i].status);
		if (len >= sizeof(line))
			len = sizeof(line) - 1;
	}
	say("done tests=%d failed=%d%s", n, failed, line);
	power_off();
	return 0;
}
