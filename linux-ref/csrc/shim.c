// SPDX-License-Identifier: GPL-2.0
/* State the shims share across the copied Linux code: the clock, the BUG
 * escape, the WARN count and the last stall tracepoint. */
#include <linux/kernel.h>
#include <trace/events/napi.h>

unsigned long jiffies;
jmp_buf ref_bug_jmp;
unsigned long ref_warn_count;
struct ref_stall_event ref_stall;

void ref_set_jiffies(unsigned long j) { jiffies = j; }
unsigned long ref_warns(void) { return ref_warn_count; }
void ref_stall_event(struct ref_stall_event *out) { *out = ref_stall; }
