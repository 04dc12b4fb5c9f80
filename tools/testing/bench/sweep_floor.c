// SPDX-License-Identifier: GPL-2.0
/*
 * sweep_floor: what a sparse clearing sweep pays per page table, next to
 * what the kernel's own cheapest visit of the same page tables costs.
 *
 * One VMA of PAGES populated pages is tracked; each round writes WRITES
 * random pages and times, per call:
 *   clear       touched_sweep(), reporting and clearing (what make bench
 *               times)
 *   peek        touched_sweep() without clearing: the marks are searched
 *               and reported, no page table is visited
 *   madv_cold   process_madvise(MADV_COLD) over the same pages, one iovec
 *               each: walks to each page table, takes its lock, looks at
 *               and may modify each entry, flushes
 *   holes       the same call over as many pages of a mapping with no
 *               page tables: its cost per range without the visit
 * and counts the page tables the written pages fall in.  Run it at two
 * sizes with the same WRITES: the growth of each column divided by the
 * growth in page tables is that column's cost per page table.
 *
 * Build: gcc -O2 -Wall -I include/uapi -o build/sweep_floor \
 *            tools/testing/bench/sweep_floor.c
 * Run:   sweep_floor PAGES WRITES ROUNDS   (in the plain guest)
 */

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/touched_sweep.h>

/* The system call numbers for older headers, and the wrappers. */
#include "../selftests/touched_sweep/touched_sweep_helpers.h"

#ifndef __NR_process_madvise
#define __NR_process_madvise 440
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif

#define PAGE		4096UL
#define PTE_PAGES	512UL
#define VEC_LEN		(1UL << 16)
/* UIO_MAXIOV: process_madvise() takes at most this many ranges a call. */
#define MAX_IOV		1024

static struct touched_range vec[VEC_LEN];
static int pidfd;

/* One sweep of [@start, @end): the pages it reported, or -1. */
static long sweep(char *start, char *end, unsigned int flags)
{
	struct touched_sweep_args a = {
		.size = sizeof(a), .op = TOUCHED_SWEEP_OP_SWEEP, .flags = flags,
		.start = (uintptr_t)start, .end = (uintptr_t)end,
		.vec = (uintptr_t)vec, .vec_len = VEC_LEN,
	};
	long i, n, pages = 0;

	n = sys_touched_sweep(pidfd, &a);
	for (i = 0; i < n; i++)
		pages += (vec[i].end - vec[i].start) / PAGE;
	return n < 0 ? -1 : pages;
}

static int track(char *start, char *end)
{
	struct touched_sweep_args a = {
		.size = sizeof(a), .op = TOUCHED_SWEEP_OP_TRACK,
		.start = (uintptr_t)start, .end = (uintptr_t)end,
	};

	return sys_touched_sweep(pidfd, &a);
}

static int madvise_cold(const struct iovec *iov, unsigned long n)
{
	unsigned long i, k;

	for (i = 0; i < n; i += k) {
		k = n - i < MAX_IOV ? n - i : MAX_IOV;
		if (syscall(__NR_process_madvise, pidfd, iov + i, k, MADV_COLD, 0) < 0)
			return -1;
	}
	return 0;
}

/* xorshift64*, fixed seed: every run writes the same pages. */
static uint64_t rng(void)
{
	static uint64_t s = 88172645463325252ULL;

	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 2685821657736338717ULL;
}

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_ulong(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	unsigned long pages, writes, rounds, r, i, n, tables;
	double t, clear = 0, peek = 0, cold = 0, holes = 0;
	struct iovec *iov, *hiov;
	unsigned long *idx;
	char *base, *hole;

	if (argc != 4) {
		fprintf(stderr, "usage: %s PAGES WRITES ROUNDS\n", argv[0]);
		return 2;
	}
	pages = strtoul(argv[1], NULL, 0);
	writes = strtoul(argv[2], NULL, 0);
	rounds = strtoul(argv[3], NULL, 0);
	if (!pages || !writes || writes > VEC_LEN || !rounds) {
		fprintf(stderr, "PAGES, WRITES (at most %lu) and ROUNDS must be positive\n",
			VEC_LEN);
		return 2;
	}
	idx = calloc(writes, sizeof(*idx));
	iov = calloc(writes, sizeof(*iov));
	hiov = calloc(writes, sizeof(*hiov));
	pidfd = sys_pidfd_open(getpid(), 0);
	base = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	hole = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!idx || !iov || !hiov || pidfd < 0 || base == MAP_FAILED ||
	    hole == MAP_FAILED) {
		perror("setup");
		return 1;
	}
	memset(base, 1, pages * PAGE);
	if (track(base, base + pages * PAGE) ||
	    sweep(base, base + pages * PAGE, TOUCHED_SWEEP_CLEAR) < 0) {
		perror("touched_sweep");
		return 1;
	}

	for (r = 0; r < rounds; r++) {
		for (i = 0; i < writes; i++)
			idx[i] = rng() % pages;
		qsort(idx, writes, sizeof(*idx), cmp_ulong);
		for (i = 0, n = 0, tables = 0; i < writes; i++) {
			if (n && idx[i] == idx[i - 1])
				continue;
			if (!n || idx[i] / PTE_PAGES != idx[i - 1] / PTE_PAGES)
				tables++;
			iov[n] = (struct iovec){ base + idx[i] * PAGE, PAGE };
			hiov[n] = (struct iovec){ hole + idx[i] * PAGE, PAGE };
			n++;
		}
		/*
		 * Whichever of the clearing sweep and MADV_COLD runs second
		 * finds the page tables warm: take turns.
		 */
		for (i = 0; i < n; i++)
			*(volatile uint64_t *)iov[i].iov_base = 2 * r + 2;
		if (r & 1) {
			t = now_us();
			if (madvise_cold(iov, n))
				goto fail;
			cold += now_us() - t;
		}
		t = now_us();
		if (sweep(base, base + pages * PAGE, TOUCHED_SWEEP_CLEAR) != (long)n)
			goto fail;
		clear += now_us() - t;
		if (!(r & 1)) {
			t = now_us();
			if (madvise_cold(iov, n))
				goto fail;
			cold += now_us() - t;
		}
		t = now_us();
		if (madvise_cold(hiov, n))
			goto fail;
		holes += now_us() - t;

		/* The test-only sweep on writes of its own, cleared untimed. */
		for (i = 0; i < n; i++)
			*(volatile uint64_t *)iov[i].iov_base = 2 * r + 3;
		t = now_us();
		if (sweep(base, base + pages * PAGE, 0) != (long)n)
			goto fail;
		peek += now_us() - t;
		if (sweep(base, base + pages * PAGE, TOUCHED_SWEEP_CLEAR) != (long)n)
			goto fail;
	}
	printf("%lu MiB, %lu pages written in %lu page tables: clear %.1f us, "
	       "peek %.1f us, madv_cold %.1f us, holes %.1f us\n",
	       pages * PAGE >> 20, n, tables, clear / rounds, peek / rounds,
	       cold / rounds, holes / rounds);
	return 0;
fail:
	perror("a timed call failed or reported another page count");
	return 1;
}
