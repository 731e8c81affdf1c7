/* SPDX-License-Identifier: GPL-2.0 */
/* jiffies as a variable the test sets, HZ = 100 (CONFIG_HZ_100, as the guest), and
 * the comparisons and conversions of include/linux/jiffies.h and
 * kernel/time/time.c for that HZ (typecheck() left out). */
#ifndef REF_SHIM_JIFFIES_H
#define REF_SHIM_JIFFIES_H
#include <linux/types.h>
#define HZ 100
#define MSEC_PER_SEC 1000L
#define MAX_JIFFY_OFFSET ((LONG_MAX >> 1) - 1)
extern unsigned long jiffies;
#define time_after(a, b) ((long)((b) - (a)) < 0)
#define time_before(a, b) time_after(b, a)
#define time_after_eq(a, b) ((long)((a) - (b)) >= 0)
#define time_before_eq(a, b) time_after_eq(b, a)
static inline unsigned int jiffies_to_msecs(const unsigned long j)
{
	return (MSEC_PER_SEC / HZ) * j;
}
static inline unsigned long _msecs_to_jiffies(const unsigned int m)
{
	return (m + (MSEC_PER_SEC / HZ) - 1) / (MSEC_PER_SEC / HZ);
}
static inline unsigned long msecs_to_jiffies(const unsigned int m)
{
	if ((int)m < 0)
		return MAX_JIFFY_OFFSET;
	return _msecs_to_jiffies(m);
}
#endif
