#!/bin/busybox sh
# PID 1 of the guest: mount the host's root read-only (9p) under a tmpfs overlay, the run's
# results directory read-write, the kernel's modules, then run the agent in a chroot.
# Variables come from the kernel command line (no dot in their names -> environment).
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /mods/$m.ko 2>/dev/null; done
echo "ublkcheck-init: kernel $(uname -r) up $(cut -d' ' -f1 /proc/uptime)"
# --boot snapshot (snapshot.py): the host migrates the guest into a file here, before 9p is
# mounted, and every guest restored from it resumes in this read. Its clock and random
# pool are the saved ones: the host's "go <epoch> <seed>" renews both.
if [ -n "$SNAPSHOT" ]; then
  echo "ublkcheck-init: snapshot point"
  while read -r word epoch seed; do [ "$word" = go ] && break; done
  date -s "@$epoch" >/dev/null
  echo "$seed" > /dev/urandom
  echo "ublkcheck-init: restored up $(cut -d' ' -f1 /proc/uptime)"
fi
mkdir -p /mnt/host /mnt/up /mnt/results /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /mnt/host || {
  echo "ublkcheck-init: cannot mount the host root (9p)"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /mnt/results || {
  echo "ublkcheck-init: cannot mount the results share (9p)"; poweroff -f; }
mount -t tmpfs -o size=75% tmpfs /mnt/up
mkdir -p /mnt/up/upper /mnt/up/work
# /fast (initramfs.py): copies of the files python starts the agent from, at their own
# paths, in memory; everything else is the host's, over 9p.
lower=/mnt/host
[ -d /fast ] && lower=/fast:/mnt/host
mount -t overlay overlay -o lowerdir=$lower,upperdir=/mnt/up/upper,workdir=/mnt/up/work /newroot
for d in proc sys dev run; do mkdir -p /newroot/$d; done
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
# /tmp stays the overlay's: the host's /tmp shows through (a checkout or a results
# directory may live there) and writes go to the tmpfs upper layer.
mount -t tmpfs tmpfs /newroot/run
ln -sf /proc/self/fd /newroot/dev/fd
ln -sf /proc/self/fd/0 /newroot/dev/stdin
ln -sf /proc/self/fd/1 /newroot/dev/stdout
ln -sf /proc/self/fd/2 /newroot/dev/stderr
mkdir -p /newroot/lib/modules/$KREL /newroot/ublkcheck-results
mount --bind /newroot$KMODS /newroot/lib/modules/$KREL
mount --bind /mnt/results /newroot/ublkcheck-results
# No udev in the guest: devtmpfs creates nodes; a settle that waits for nothing is right.
# A host without udev has no udevadm to bind over: then the stub goes into the overlay
# (the upstream selftests call `udevadm settle` after every ADD).
printf '#!/bin/sh\nexit 0\n' > /mnt/up/udevadm && chmod +x /mnt/up/udevadm
if [ -e /newroot/usr/bin/udevadm ]; then
  mount --bind /mnt/up/udevadm /newroot/usr/bin/udevadm
else
  cp /mnt/up/udevadm /newroot/usr/bin/udevadm
fi
echo "ublkcheck-init: agent start up $(cut -d' ' -f1 /proc/uptime)"
# The plan's name and the share's mount point are guest/protocol.py's PLAN_FILE and SHARE.
# -S: no site (no .pth scan of dist-packages over 9p); the agent is stdlib only. -m: as a
# module, python takes agent.py's bytecode from the /fast layer instead of compiling it.
PYTHONPATH=${AGENT%/*} chroot /newroot /usr/bin/python3 -S -m agent /ublkcheck-results/plan.json
echo "ublkcheck-init: agent exited $?"
sync
poweroff -f
