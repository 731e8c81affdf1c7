/* SPDX-License-Identifier: GPL-2.0 */
/* The dql_stall_detected tracepoint: recorded for the test to compare with
 * the Rust core's stall report. */
#ifndef REF_SHIM_TRACE_NAPI_H
#define REF_SHIM_TRACE_NAPI_H
#include <linux/types.h>
struct ref_stall_event {
	unsigned long count;
	unsigned long thrs, len, last_reap, hist_head, now;
	unsigned long hist[4];
};
extern struct ref_stall_event ref_stall;
static inline void trace_dql_stall_detected(unsigned short thrs, unsigned int len,
					    unsigned long last_reap, unsigned long hist_head,
					    unsigned long now, unsigned long *hist)
{
	ref_stall.count++;
	ref_stall.thrs = thrs;
	ref_stall.len = len;
	ref_stall.last_reap = last_reap;
	ref_stall.hist_head = hist_head;
	ref_stall.now = now;
	memcpy(ref_stall.hist, hist, sizeof(ref_stall.hist));
}
#endif
