/* SPDX-License-Identifier: GPL-2.0 */
/* Compiler and memory-model stand-ins: one thread, so every barrier is a
 * compiler barrier and READ_ONCE/WRITE_ONCE are volatile accesses. */
#ifndef REF_SHIM_COMPILER_H
#define REF_SHIM_COMPILER_H
#include <linux/types.h>
#define barrier() __asm__ __volatile__("" : : : "memory")
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, val) (*(volatile __typeof__(x) *)&(x) = (val))
#define smp_mb() barrier()
#define smp_rmb() barrier()
#define smp_wmb() barrier()
#define smp_mb__before_atomic() barrier()
#define smp_mb__after_atomic() barrier()
#define prefetchw(x) ((void)(x))
#endif
