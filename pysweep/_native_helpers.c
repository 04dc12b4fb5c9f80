/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The C half of pysweep._native, compiled by pysweep/_build_ffi.py: the
 * touched_sweep(2) call and process_vm_readv() for the binding.
 */
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/touched_sweep.h>

/*
 * The syscall number comes from <asm/unistd.h> once the headers have it;
 * until then it is what the series gives it in every table: 463, 573 on
 * alpha, and offset by the ABI's base on mips and x32.
 */
#ifndef __NR_touched_sweep
# if defined(__alpha__)
#  define __NR_touched_sweep 573
# elif defined(__mips__)
#  define __NR_touched_sweep (__NR_Linux + 463)
# elif defined(__x86_64__) && defined(__ILP32__)
#  define __NR_touched_sweep (__X32_SYSCALL_BIT + 463)
# else
#  define __NR_touched_sweep 463
# endif
#endif

#define PYSWEEP_NR_TOUCHED_SWEEP __NR_touched_sweep

/* Every unused argument register is passed as an explicit zero: on kernels
 * where this number is another call, that call then sees zero sizes. */
static long pysweep_touched_sweep(int pidfd, void *args)
{
	return syscall(__NR_touched_sweep, (long)pidfd, args, 0L, 0L, 0L, 0L);
}

/* One process_vm_readv() of [remote, remote + len) into local. */
static long pysweep_read_memory(int pid, void *local, unsigned long remote,
				unsigned long len)
{
	struct iovec l = { .iov_base = local, .iov_len = len };
	struct iovec r = { .iov_base = (void *)remote, .iov_len = len };

	return process_vm_readv(pid, &l, 1, &r, 1, 0);
}

/* UIO_MAXIOV: process_vm_readv() takes at most this many ranges. */
#define PYSWEEP_READ_RANGES 1024

/*
 * One process_vm_readv() of @n ranges into local, one after another;
 * @ranges holds the start and the length of each in turn, @total their sum.
 */
static long pysweep_read_ranges(int pid, void *local, unsigned long total,
				const unsigned long *ranges, unsigned long n)
{
	struct iovec l = { .iov_base = local, .iov_len = total };
	struct iovec r[PYSWEEP_READ_RANGES];
	unsigned long i;

	if (n > PYSWEEP_READ_RANGES) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < n; i++) {
		r[i].iov_base = (void *)ranges[2 * i];
		r[i].iov_len = ranges[2 * i + 1];
	}
	return process_vm_readv(pid, &l, 1, r, n, 0);
}
