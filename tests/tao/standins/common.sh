# Shared helpers of the stand-in TAO entry points (busybox sh). Sourced by detectnet_v2 & co.
# On demand (environment, set through PEOPLENET_TAO__ENV in tests):
#   STANDIN_FAIL=<task>   exit 1 with a Python-like traceback
#   STANDIN_OOM=<task>    allocate memory until the container's memory limit kills it
#   STANDIN_HANG=<task>   sleep for a long time (timeout / stop tests)
#   STANDIN_SLEEP=<s>     sleep per training epoch

die() { echo "$PROG: error: $*" >&2; exit 2; }
need() { [ -n "$2" ] || die "the following arguments are required: $1"; }
need_file() { [ -f "$2" ] || die "$1: file not found: $2"; }
spec_value() { sed -n "s/^ *$1: \"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$2" | head -n 1; }
tao_log() { echo "$(date '+%Y-%m-%d %H:%M:%S'),000 [TAO Toolkit] [INFO] $1"; }

on_demand() {
  task="$1"
  if [ "${STANDIN_FAIL:-}" = "$task" ]; then
    echo "Traceback (most recent call last):"
    echo "  File \"/usr/local/lib/python3.8/dist-packages/nvidia_tao_tf1/cv/detectnet_v2/scripts/$task.py\", line 1"
    echo "ValueError: stand-in failure requested for $task"
    echo "Execution status: FAIL"
    exit 1
  fi
  if [ "${STANDIN_OOM:-}" = "$task" ]; then
    echo "standin: allocating memory for $task"
    hog=$(head -c 400000000 /dev/zero | tr '\0' x)
    echo "standin: still alive after ${#hog} bytes"
    exit 0
  fi
  if [ "${STANDIN_HANG:-}" = "$task" ]; then
    echo "standin: $task hangs"
    i=0
    while [ $i -lt 600 ]; do sleep 1; i=$((i + 1)); done
  fi
}

describe_container() {
  echo "standin: uid=$(id -u) gid=$(id -g) cwd=$(pwd) role=${STANDIN_ROLE:-?}"
  echo "standin: ulimit stack=$(ulimit -s) memlock=$(ulimit -l) shm_kb=$(df -k /dev/shm | awk 'NR==2 {print $2}')"
  grep ' /workspace/tao-experiments' /proc/mounts | awk '{print "standin: mount " $2 " " substr($4, 1, 2)}'
}
