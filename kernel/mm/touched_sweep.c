// SPDX-License-Identifier: GPL-2.0
/*
 * touched_sweep(2): tell a dumper which memory a process wrote.
 *
 * A caller opts ranges of a target process into tracking.  Write faults in
 * tracked VMAs mark the written pages touched, and a sweep reports (and
 * optionally clears) those marks as coalesced address ranges.  The target
 * is named by a pidfd and the caller needs the same right over it as
 * process_vm_readv() asks for.
 *
 * See Documentation/admin-guide/mm/touched_sweep.rst.
 */

#include <linux/err.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/pid.h>
#include <linux/ptrace.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/syscalls.h>
#include <linux/touched_sweep.h>
#include <linux/uaccess.h>

/*
 * Read the caller's argument structure.  @size is read first so that older
 * and newer callers both work: copy_struct_from_user() zero-fills fields the
 * caller does not know and rejects non-zero fields the kernel does not know.
 */
static int touched_sweep_copy_args(struct touched_sweep_args *args,
				   struct touched_sweep_args __user *uargs)
{
	u64 usize;

	if (get_user(usize, &uargs->size))
		return -EFAULT;
	if (usize < TOUCHED_SWEEP_ARGS_SIZE_VER0)
		return -EINVAL;
	if (usize > PAGE_SIZE)
		return -E2BIG;
	return copy_struct_from_user(args, sizeof(*args), uargs, usize);
}

/* Check everything that does not depend on the target process. */
static int touched_sweep_check_args(const struct touched_sweep_args *args)
{
	switch (args->op) {
	case TOUCHED_SWEEP_OP_TRACK:
	case TOUCHED_SWEEP_OP_UNTRACK:
		if (args->flags || args->vec || args->vec_len)
			return -EINVAL;
		break;
	case TOUCHED_SWEEP_OP_SWEEP:
		if (args->flags & ~TOUCHED_SWEEP_FLAGS_MASK)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}

	if (!PAGE_ALIGNED(args->start) || !PAGE_ALIGNED(args->end))
		return -EINVAL;
	if (args->end < args->start || args->end > TASK_SIZE_MAX)
		return -EINVAL;

	if (args->op == TOUCHED_SWEEP_OP_SWEEP &&
	    !access_ok(u64_to_user_ptr(args->vec),
		       size_mul(args->vec_len, sizeof(struct touched_range))))
		return -EFAULT;

	return 0;
}

/*
 * Resolve @pidfd to the target's mm with a reference on mm_users.  The
 * permission is the one process_vm_readv() and process_vm_writev() check:
 * ptrace attach with the caller's real credentials.
 */
static struct mm_struct *touched_sweep_get_mm(int pidfd)
{
	struct task_struct *task;
	struct mm_struct *mm;
	unsigned int f_flags;

	task = pidfd_get_task(pidfd, &f_flags);
	if (IS_ERR(task))
		return ERR_CAST(task);

	mm = mm_access(task, PTRACE_MODE_ATTACH_REALCREDS);
	put_task_struct(task);

	/* No mm: the task has exited (zombie) or is a kernel thread. */
	if (!mm)
		return ERR_PTR(-ESRCH);
	if (mm == ERR_PTR(-EACCES))
		return ERR_PTR(-EPERM);
	return mm;
}

/**
 * sys_touched_sweep - track, untrack or sweep touched pages of a process
 * @pidfd: pidfd of the target process
 * @uargs: operation and its arguments, see struct touched_sweep_args
 *
 * Arguments are checked in this order, and the first failing check decides
 * the error:
 *
 *  1. @uargs unreadable: -EFAULT.
 *  2. @uargs->size below TOUCHED_SWEEP_ARGS_SIZE_VER0: -EINVAL; above
 *     PAGE_SIZE, or with non-zero bytes past the structure this kernel
 *     knows: -E2BIG.
 *  3. Unknown op, unknown flag, or a flag, @vec or @vec_len given to an
 *     operation that takes none: -EINVAL.
 *  4. @start or @end not page aligned, @end below @start, or @end above the
 *     largest user address: -EINVAL.
 *  5. For a sweep, @vec and @vec_len not describing user memory: -EFAULT.
 *  6. @pidfd not a pidfd: -EBADF.
 *  7. The target has exited: -ESRCH.
 *  8. The caller may not ptrace-attach to the target: -EPERM.
 *
 * Locking: takes no lock itself before the target is resolved; the
 * operations take the target's mmap_lock and never copy to or from user
 * memory while holding it.
 *
 * Return: for a sweep, the number of ranges stored in @vec; 0 for the other
 * operations; a negative errno on failure.
 */
SYSCALL_DEFINE2(touched_sweep, int, pidfd,
		struct touched_sweep_args __user *, uargs)
{
	struct touched_sweep_args args;
	struct mm_struct *mm;
	long ret;

	ret = touched_sweep_copy_args(&args, uargs);
	if (ret)
		return ret;
	ret = touched_sweep_check_args(&args);
	if (ret)
		return ret;

	mm = touched_sweep_get_mm(pidfd);
	if (IS_ERR(mm))
		return PTR_ERR(mm);

	/* The tracking core is not wired up yet. */
	ret = -EOPNOTSUPP;

	mmput(mm);
	return ret;
}
