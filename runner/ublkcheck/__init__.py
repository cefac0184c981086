"""ublkcheck runner: boots kernels in QEMU, runs the ublk suites inside, scans the console."""
