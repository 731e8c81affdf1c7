/* SPDX-License-Identifier: GPL-2.0 */
/* max/clamp with the kernel's semantics (include/linux/minmax.h __clamp:
 * hi wins when lo > hi), and BUG/WARN that the test can observe. */
#ifndef REF_SHIM_KERNEL_H
#define REF_SHIM_KERNEL_H
#include <linux/compiler.h>
#include <linux/bitops.h>
#include <linux/jiffies.h>

#define max(a, b) ({ __typeof__(a) _a = (a); __typeof__(b) _b = (b); _a > _b ? _a : _b; })
#define min(a, b) ({ __typeof__(a) _a = (a); __typeof__(b) _b = (b); _a < _b ? _a : _b; })
#define max_t(type, a, b) ({ type _a = (a); type _b = (b); _a > _b ? _a : _b; })
#define clamp(val, lo, hi) ({ __auto_type _v = (val); __auto_type _l = (lo); __auto_type _h = (hi); \
	_v >= _h ? _h : (_v <= _l ? _l : _v); })
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))

/* BUG: the kernel would die here. The test's glue catches it with setjmp
 * (ref_bug_jmp) before any state changed, and says so. */
extern jmp_buf ref_bug_jmp;
#define BUG_ON(cond) do { if (cond) longjmp(ref_bug_jmp, 1); } while (0)
/* WARN_ON_ONCE: counts, and returns the condition as the kernel does. */
extern unsigned long ref_warn_count;
#define WARN_ON_ONCE(cond) ({ int __ret = !!(cond); if (__ret) ref_warn_count++; __ret; })
#endif
