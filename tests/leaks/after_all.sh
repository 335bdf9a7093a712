#!/bin/sh
# Runs after every other CTest entry (a cleanup fixture): whatever the whole run left behind on
# the host is a leak. Checks hutch's interfaces and nftables table, the tests' cgroups, mounts,
# loop devices, sandboxes and servers; prints each leak and exits 1 if there is any.
#
# Tests keep their data dirs under $TMPDIR (or /tmp) named hutch-*, and their cgroup roots are
# named hutch-*: a hutch server of the machine's own (data dir elsewhere, cgroup root "hutch")
# is not counted, and while one runs with nat sessions the network checks are left out.
set -u
tmp="${TMPDIR:-/tmp}"
leaks=0
leak() {
  echo "LEAK: $*"
  leaks=$((leaks + 1))
}
of_tests() {  # whether a path is under a test's temp dir
  case "$1" in
    "$tmp"/hutch-* | /tmp/hutch-*) return 0 ;;
  esac
  return 1
}

other_server=""
for p in /proc/[0-9]*; do
  comm=$(cat "$p/comm" 2>/dev/null) || continue
  case "$comm" in
    hutch-agent | memfd:hutch-age*)
      log=$(readlink "$p/fd/1" 2>/dev/null) || continue
      of_tests "$log" && leak "sandbox agent $(basename "$p") of $(dirname "$log")"
      ;;
    hutch)
      args=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
      case "$args" in
        *serve*"$tmp"/hutch-* | *serve*/tmp/hutch-*) leak "server $(basename "$p"): $args" ;;
        *serve*) other_server="$(basename "$p")" ;;
      esac
      ;;
  esac
done

if [ -n "$other_server" ]; then
  echo "note: a hutch server of this machine runs (pid $other_server); interfaces and nftables not checked"
else
  # hutch-*: driver local's veths; htcp-*: local-tcp's (a table of their own, hutch_tcp).
  for dev in /sys/class/net/hutch-* /sys/class/net/htcp-*; do
    [ -e "$dev" ] && leak "interface $(basename "$dev")"
  done
  for table in hutch hutch_tcp; do
    if command -v nft >/dev/null 2>&1 && nft list table inet "$table" >/dev/null 2>&1; then
      leak "nftables table inet $table"
    fi
  done
fi
# The tests' cgroup roots (hutch-<id>); their roots may stay, empty.
for h in $(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo | sort -u); do
  for root in "$h"/hutch-*; do
    [ -d "$root" ] || continue
    n=$(find "$root" -mindepth 1 -type d 2>/dev/null | wc -l)
    [ "$n" -gt 0 ] && leak "$n cgroups below $root"
  done
done
n=$(grep -c 'hutch' /proc/self/mountinfo)
[ "$n" -gt 0 ] && leak "$n mounts: $(grep hutch /proc/self/mountinfo | awk '{print $5}' | tr '\n' ' ')"
for f in /sys/block/loop*/loop/backing_file; do
  [ -e "$f" ] || continue
  of_tests "$(cat "$f")" && leak "loop device $(echo "$f" | cut -d/ -f4) on $(cat "$f")"
done

if [ "$leaks" -gt 0 ]; then
  echo "$leaks leaks after the test run"
  exit 1
fi
echo "nothing left behind: no test sandbox, server, cgroup, mount or loop device; no hutch interface or nftables table"
