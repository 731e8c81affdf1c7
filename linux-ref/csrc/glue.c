// SPDX-License-Identifier: GPL-2.0
/*
 * A netdev_queue for the copied Linux helpers (upstream/netdev_excerpts.h)
 * and one C entry point per helper, for the Rust differential test.
 * Built twice by build.rs: with CONFIG_BQL (prefix ref_bql_) and without
 * (prefix ref_nobql_), as a kernel built with or without BQL.
 *
 * Calls that can reach dql_completed() set up the BUG escape first: a
 * BUG_ON there returns REF_BUG with nothing changed (it comes before any
 * write), where the kernel would have died.
 */
#include <linux/kernel.h>
#include <linux/dynamic_queue_limits.h>

#define REF_CAT2(a, b) a##b
#define REF_CAT(a, b) REF_CAT2(a, b)
#define REF(name) REF_CAT(REF_PREFIX, name)
#define REF_BUG (-1000)

/* The qdisc only counts how often it is scheduled. */
struct Qdisc {
	unsigned long schedules;
};

/* The fields of include/linux/netdevice.h's struct netdev_queue that the
 * helpers touch (dql is there only with CONFIG_BQL in the kernel; here it
 * always is, unused without). */
struct netdev_queue {
	struct Qdisc *qdisc;
	struct dql dql;
	unsigned long trans_start;
	unsigned long state;
};

static inline void __netif_schedule(struct Qdisc *q) { q->schedules++; }
#define rcu_read_lock() do { } while (0)
#define rcu_read_unlock() do { } while (0)
#define rcu_dereference(p) (p)

/* sysfs plumbing for the copied net-sysfs.c setters. */
struct netdev_queue_attribute {
	const char *name;
	ssize_t (*show)(struct netdev_queue *queue, char *buf);
	ssize_t (*store)(struct netdev_queue *queue, const char *buf, size_t len);
};
#define __ATTR(_name, _mode, _show, _store) { .name = #_name, .show = _show, .store = _store }
#define sysfs_emit(buf, ...) sprintf(buf, __VA_ARGS__)
#define EINVAL 22
#define ERANGE 34
static int kstrtouint(const char *s, unsigned int base, unsigned int *res)
{
	char *end;
	unsigned long v = strtoul(s, &end, base);
	if (end == s || (*end && *end != '\n') || v > UINT_MAX)
		return -EINVAL;
	*res = v;
	return 0;
}
#define EXPORT_SYMBOL(sym)
/* net/core/dev.c's two functions are global there; this file is built
 * twice, so each build gets its own names. */
#define netif_schedule_queue REF(netif_schedule_queue)
#define netif_tx_wake_queue REF(netif_tx_wake_queue)

#include "netdev_excerpts.h"

/* The free-descriptor count the macros' get_desc sees: a short script, one
 * value per evaluation (the last one repeats), so the test can make room
 * appear between the check and the re-check as a concurrent completion
 * would, and both sides must evaluate it the same number of times. */
static unsigned int desc_script[4];
static unsigned int desc_len, desc_pos;
static unsigned int get_desc(void)
{
	unsigned int v = desc_script[desc_pos < desc_len ? desc_pos : desc_len - 1];
	desc_pos++;
	return v;
}
void REF(set_desc)(const unsigned int *v, unsigned int n)
{
	desc_len = n > 4 ? 4 : (n ? n : 1);
	memcpy(desc_script, v, desc_len * sizeof(*v));
	desc_pos = 0;
}
unsigned int REF(desc_reads)(void) { return desc_pos; }

struct netdev_queue *REF(new)(unsigned int hold_time)
{
	struct netdev_queue *q = calloc(1, sizeof(*q));
	q->qdisc = calloc(1, sizeof(*q->qdisc));
	dql_init(&q->dql, hold_time);
	q->trans_start = jiffies;
	return q;
}
void REF(free)(struct netdev_queue *q) { free(q->qdisc); free(q); }

/* Every field, widened to 64 bits, in struct dql order, then the queue's. */
struct ref_fields {
	unsigned long long num_queued, adj_limit, last_obj_cnt, stall_thrs, history_head;
	unsigned long long history[DQL_HIST_LEN];
	unsigned long long limit, num_completed, prev_ovlimit, prev_num_queued, prev_last_obj_cnt;
	unsigned long long lowest_slack, slack_start_time, max_limit, min_limit, slack_hold_time;
	unsigned long long stall_max, last_reap, stall_cnt;
	unsigned long long trans_start, state, schedules;
};
void REF(fields)(const struct netdev_queue *q, struct ref_fields *f)
{
	const struct dql *d = &q->dql;
	f->num_queued = d->num_queued;
	f->adj_limit = d->adj_limit;
	f->last_obj_cnt = d->last_obj_cnt;
	f->stall_thrs = d->stall_thrs;
	f->history_head = d->history_head;
	for (int i = 0; i < DQL_HIST_LEN; i++)
		f->history[i] = d->history[i];
	f->limit = d->limit;
	f->num_completed = d->num_completed;
	f->prev_ovlimit = d->prev_ovlimit;
	f->prev_num_queued = d->prev_num_queued;
	f->prev_last_obj_cnt = d->prev_last_obj_cnt;
	f->lowest_slack = d->lowest_slack;
	f->slack_start_time = d->slack_start_time;
	f->max_limit = d->max_limit;
	f->min_limit = d->min_limit;
	f->slack_hold_time = d->slack_hold_time;
	f->stall_max = d->stall_max;
	f->last_reap = d->last_reap;
	f->stall_cnt = d->stall_cnt;
	f->trans_start = q->trans_start;
	f->state = q->state;
	f->schedules = q->qdisc->schedules;
}

/* dql alone. */
void REF(dql_queued)(struct netdev_queue *q, unsigned int n) { dql_queued(&q->dql, n); }
int REF(dql_avail)(const struct netdev_queue *q) { return dql_avail(&q->dql); }
int REF(dql_completed)(struct netdev_queue *q, unsigned int n)
{
	if (setjmp(ref_bug_jmp))
		return REF_BUG;
	dql_completed(&q->dql, n);
	return 0;
}
void REF(dql_reset)(struct netdev_queue *q) { dql_reset(&q->dql); }

/* Queue state. */
void REF(stop)(struct netdev_queue *q) { netif_tx_stop_queue(q); }
void REF(start)(struct netdev_queue *q) { netif_tx_start_queue(q); }
void REF(wake)(struct netdev_queue *q) { netif_tx_wake_queue(q); }
void REF(schedule)(struct netdev_queue *q) { netif_schedule_queue(q); }
/* netif_freeze_queues / netif_unfreeze_queues (net/sched/sch_generic.c),
 * per queue and without the tx lock: the bit alone. */
void REF(freeze)(struct netdev_queue *q) { set_bit(__QUEUE_STATE_FROZEN, &q->state); }
void REF(unfreeze)(struct netdev_queue *q) { clear_bit(__QUEUE_STATE_FROZEN, &q->state); }
int REF(stopped)(const struct netdev_queue *q) { return netif_tx_queue_stopped(q); }
int REF(xmit_stopped)(const struct netdev_queue *q) { return netif_xmit_stopped(q); }
int REF(frozen_or_stopped)(const struct netdev_queue *q) { return netif_xmit_frozen_or_stopped(q); }
int REF(frozen_or_drv_stopped)(const struct netdev_queue *q) { return netif_xmit_frozen_or_drv_stopped(q); }

/* BQL hooks. */
void REF(sent_queue)(struct netdev_queue *q, unsigned int bytes) { netdev_tx_sent_queue(q, bytes); }
int REF(sent_queue_more)(struct netdev_queue *q, unsigned int bytes, int more)
{
	return __netdev_tx_sent_queue(q, bytes, more);
}
int REF(completed_queue)(struct netdev_queue *q, unsigned int pkts, unsigned int bytes)
{
	if (setjmp(ref_bug_jmp))
		return REF_BUG;
	netdev_tx_completed_queue(q, pkts, bytes);
	return 0;
}
void REF(reset_queue)(struct netdev_queue *q) { netdev_tx_reset_queue(q); }

/* The lockless stop/wake macros. */
int REF(try_stop)(struct netdev_queue *q, unsigned int start_thrs)
{
	return netif_txq_try_stop(q, get_desc(), start_thrs);
}
int REF(maybe_stop)(struct netdev_queue *q, unsigned int stop_thrs, unsigned int start_thrs)
{
	return netif_txq_maybe_stop(q, get_desc(), stop_thrs, start_thrs);
}
int REF(completed_wake)(struct netdev_queue *q, unsigned int pkts, unsigned int bytes,
			unsigned int start_thrs, int down_cond)
{
	if (setjmp(ref_bug_jmp))
		return REF_BUG;
	return __netif_txq_completed_wake(q, pkts, bytes, get_desc(), start_thrs, down_cond);
}

/* sysfs byte_queue_limits/: store a decimal value; returns the length or
 * -errno as the kernel's store does. */
#define REF_STORE(name)                                                       \
	long REF(store_##name)(struct netdev_queue *q, unsigned int value)    \
	{                                                                     \
		char buf[16];                                                 \
		int n = snprintf(buf, sizeof(buf), "%u", value);              \
		return bql_##name##_attribute.store(q, buf, n);               \
	}
REF_STORE(limit)
REF_STORE(limit_max)
REF_STORE(limit_min)
REF_STORE(hold_time)
REF_STORE(stall_thrs)
REF_STORE(stall_max)
/* "max" for limit, limit_max and limit_min. */
long REF(store_max_keyword)(struct netdev_queue *q, int which)
{
	static const struct netdev_queue_attribute *attrs[] = {
		&bql_limit_attribute, &bql_limit_max_attribute, &bql_limit_min_attribute,
	};
	return attrs[which]->store(q, "max", 3);
}
