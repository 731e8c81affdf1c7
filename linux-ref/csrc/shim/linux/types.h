/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Single-threaded user-space stand-ins for the kernel headers that the
 * copied Linux code includes (linux-ref/csrc/upstream). Written for this
 * test crate; only what that code uses, with the kernel's meaning on
 * x86_64 (64-bit long).
 */
#ifndef REF_SHIM_TYPES_H
#define REF_SHIM_TYPES_H
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef __KERNEL__
#define __KERNEL__ 1
#endif
#define ____cacheline_aligned_in_smp
#define __ro_after_init
#define __always_inline inline __attribute__((always_inline))
#define __rcu

/* include/linux/kconfig.h: IS_ENABLED(CONFIG_X) is 1 iff CONFIG_X is
 * defined to 1. */
#define __ARG_PLACEHOLDER_1 0,
#define __take_second_arg(__ignored, val, ...) val
#define __is_defined(x) ___is_defined(x)
#define ___is_defined(val) ____is_defined(__ARG_PLACEHOLDER_##val)
#define ____is_defined(arg1_or_junk) __take_second_arg(arg1_or_junk 1, 0)
#define IS_ENABLED(option) __is_defined(option)
#endif
