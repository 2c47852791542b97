#!/bin/busybox sh
# /init of the guest (cargo xtask vm-test): mounts the host's root read-only over 9p, gives it
# the guest's own /proc, /sys, /dev and fresh tmpfs for the writable places, runs each step
# chrooted into it and reports on the serial console with lines starting with the marker.
# The host reads only the marker lines; everything else is shown for diagnosis.
/bin/busybox mkdir -p /proc /sys /dev /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
M='@MARK@'
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {
    echo "$M fail $*"
    poweroff -f
}
btf=no
[ -r /sys/kernel/btf/vmlinux ] && btf=yes
echo "$M booted $(uname -r) btf=$btf"
while read -r m params; do
    # shellcheck disable=SC2086 # the parameters are words
    insmod "/modules/$m" $params || fail "insmod $m"
done < /modules/order
# Loopback up: the tests connect to listeners on 127.0.0.1.
ip link set lo up || fail "loopback"
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /host ||
    fail "mounting the host root over 9p"
mount -t proc proc /host/proc || fail "proc"
mount -t sysfs sysfs /host/sys || fail "sysfs"
mount -t devtmpfs devtmpfs /host/dev || fail "devtmpfs"
# /tmp on ext4 in a RAM disk: 6.1's tmpfs has no user.* extended attributes (6.6 added them).
chroot /host /usr/sbin/mkfs.ext4 -q -F /dev/ram0 || fail "mkfs.ext4 /dev/ram0"
mount -t ext4 /dev/ram0 /host/tmp || fail "ext4 /tmp"
chmod 1777 /host/tmp
mount -t tmpfs tmpfs /host/run || fail "tmpfs /run"
mount -t tmpfs tmpfs /host/var/tmp || fail "tmpfs /var/tmp"
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup || fail "cgroup2"
mount -t tracefs tracefs /host/sys/kernel/tracing || fail "tracefs"
mount -t bpf bpf /host/sys/fs/bpf || fail "bpffs"
step() {
    name=$1
    shift
    echo "$M step $name start"
    chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/tmp TMPDIR=/tmp RUST_BACKTRACE=1 NO_COLOR=1 /bin/sh -c 'cd /tmp && exec "$@"' sh "$@"
    echo "$M step $name rc=$?"
}
@STEPS@
echo "$M done"
sync
poweroff -f
