#!/bin/sh
# Regenerates csrc/upstream/ from a Linux source tree (the files here came
# from Debian's linux-source-6.12 package, 6.12.118-1~deb12u1:
#   apt-get install linux-source-6.12
#   tar -xJf /usr/src/linux-source-6.12.tar.xz)
# Whole files are copied as they are; the excerpts are exact line ranges of
# the named files, each preceded by a comment naming the file and lines.
# Usage: csrc/extract.sh /path/to/linux-source-6.12
set -eu
src=$1
out=$(dirname "$0")/upstream
mkdir -p "$out/lib" "$out/include/linux"
cp "$src/lib/dynamic_queue_limits.c" "$out/lib/"
cp "$src/include/linux/dynamic_queue_limits.h" "$out/include/linux/"
excerpt() { # file first last
	printf '\n/* ---- %s lines %s-%s (Linux 6.12.118) ---- */\n' "$1" "$2" "$3"
	sed -n "$2,$3p" "$src/$1"
}
{
	printf '/* SPDX-License-Identifier: GPL-2.0 */\n'
	printf '/*\n * Excerpts of Linux 6.12.118 (Debian linux-source-6.12 6.12.118-1~deb12u1),\n'
	printf ' * copied verbatim by csrc/extract.sh: the netdev_queue state bits and\n'
	printf ' * helpers (include/linux/netdevice.h, net/core/dev.c), the lockless\n'
	printf ' * stop/wake macros (include/net/netdev_queues.h) and the BQL sysfs\n'
	printf ' * setters (net/core/net-sysfs.c). Included by glue.c after the shims.\n */\n'
	excerpt include/linux/netdevice.h 614 638
	excerpt include/linux/netdevice.h 3362 3365
	excerpt include/linux/netdevice.h 3412 3422
	excerpt include/linux/netdevice.h 3438 3441
	excerpt include/linux/netdevice.h 3454 3469
	excerpt include/linux/netdevice.h 3527 3585
	excerpt include/linux/netdevice.h 3610 3641
	excerpt include/linux/netdevice.h 3659 3665
	excerpt net/core/dev.c 3227 3250
	excerpt include/net/netdev_queues.h 132 268
	excerpt net/core/net-sysfs.c 1368 1511
} > "$out/netdev_excerpts.h"
