#!/bin/bash
# Paired GET …/archive?compress=none timing of two builds side by side (docs/benchmarks.md,
# "Archives through a pipe"): one server each on a temporary data dir, a session each with
# 10,000 files of 4 KiB, one untimed warm-up, then ROUNDS rounds alternating who goes first.
# Usage (root): bench/archive_pair.sh BEFORE_BIN_DIR AFTER_BIN_DIR  (dirs holding hutch and
# hutch-agent; copy them out of build/ first so a rebuild does not change them mid-run)
set -u
ROUNDS=${ROUNDS:-9}
declare -A URL TOK SES PID DIR
start() {  # name bindir port
  local d; d=$(mktemp -d /tmp/archive-pair-$1-XXXX); DIR[$1]=$d
  $2/hutch serve --listen 127.0.0.1:$3 --data-dir $d --log-level warn > $d/server.log 2>&1 &
  PID[$1]=$!
  URL[$1]=http://127.0.0.1:$3
  for i in $(seq 200); do [ -s $d/admin.token ] && curl -sf ${URL[$1]}/readyz >/dev/null && break; sleep 0.1; done
  TOK[$1]=$(cat $d/admin.token)
  SES[$1]=$(curl -sf -H "Authorization: Bearer ${TOK[$1]}" -X POST ${URL[$1]}/v1/sessions \
     -d '{"resources":{"disk_mb":2048},"ttl_seconds":3600}' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -sf -H "Authorization: Bearer ${TOK[$1]}" -X POST ${URL[$1]}/v1/sessions/${SES[$1]}/exec \
     -d '{"cmd":["/usr/bin/python3","-c","import os\nos.makedirs(\"/root/t\",exist_ok=True)\nfor i in range(10000):\n  open(\"/root/t/f%d\"%i,\"wb\").write(os.urandom(4096))"],"timeout_seconds":600}' >/dev/null
}
get() {  # name -> seconds
  curl -s -o /tmp/archive-pair-$1.tar -w '%{time_total}' -H "Authorization: Bearer ${TOK[$1]}" \
    "${URL[$1]}/v1/sessions/${SES[$1]}/archive?path=/root/t&compress=none"
}
start before "$1" 17101
start after "$2" 17102
get before >/dev/null; get after >/dev/null
ls -l /tmp/archive-pair-before.tar /tmp/archive-pair-after.tar
B=(); A=()
for r in $(seq $ROUNDS); do
  if (( r % 2 )); then B+=($(get before)); A+=($(get after)); else A+=($(get after)); B+=($(get before)); fi
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {p50=a[int((NR+1)/2)]; print "p50 " p50*1000 " ms, max " a[NR]*1000 " ms, all:"}'; printf '%s ' "$@" ; echo; }
echo "before:"; stats "${B[@]}"
echo "after:"; stats "${A[@]}"
uptime
for n in before after; do
  curl -s -H "Authorization: Bearer ${TOK[$n]}" -X DELETE "${URL[$n]}/v1/sessions/${SES[$n]}?purge=true" >/dev/null
  kill ${PID[$n]}; wait ${PID[$n]} 2>/dev/null
  rm -rf ${DIR[$n]} /tmp/archive-pair-$n.tar
done
