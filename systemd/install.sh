#!/usr/bin/env bash
# Puts rbtk's systemd units, their users and their directories in place on a
# host, or takes them away again. Idempotent: running it twice changes nothing
# the second time, and it says what it did (or, with --dry-run, would do).
#
#   sudo systemd/install.sh --runner                  # a runner host
#   sudo systemd/install.sh --coordinator             # the coordinator's host
#   sudo systemd/install.sh --runner --uninstall      # units gone; registration, state and user kept
#   sudo systemd/install.sh --runner --uninstall --purge   # ...and those too
#
# --root DIR (or DESTDIR=DIR) writes everything under DIR instead of /, and
# edits DIR/etc/passwd and DIR/etc/group (useradd --prefix) instead of the
# host's; systemctl is never run then. --no-users skips the users, the docker
# group membership and every chown (for a DIR/etc without passwd files, or
# when not root).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: install.sh (--runner | --coordinator)... [--uninstall [--purge]]
                  [--prefix DIR] [--root DIR] [--no-users] [--dry-run]

  --runner        rbtk-runner.service, user rbtk-runner (in group docker when
                  it exists), /etc/rbtk-runner (0700) and /var/lib/rbtk-runner (0750)
  --coordinator   rbtk-coordinator.service, user rbtk, /etc/rbtk (0750) with
                  coordinator.env, and /var/lib/rbtk (0700)
  --prefix DIR    where rbtk is installed: ExecStart runs DIR/bin/... (default /usr)
  --uninstall     stop and disable the units and remove them
  --purge         with --uninstall: also remove the directories (the runner's
                  registration, the coordinator's database) and the users
  --root DIR      install under DIR instead of / (default: $DESTDIR, else /)
  --no-users      do not create or remove users, nor chown anything
  --dry-run       print what would be done, change nothing
EOF
}

die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 2
}

RUNNER=0 COORDINATOR=0 UNINSTALL=0 PURGE=0 DRY_RUN=0 USERS=1
PREFIX=/usr
ROOT=${DESTDIR:-/}
while [ $# -gt 0 ]; do
  case $1 in
    --runner) RUNNER=1 ;;
    --coordinator) COORDINATOR=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --no-users) USERS=0 ;;
    --prefix | --root)
      [ $# -ge 2 ] || die "$1 needs a directory"
      if [ "$1" = --prefix ]; then PREFIX=$2; else ROOT=$2; fi
      shift
      ;;
    --prefix=*) PREFIX=${1#*=} ;;
    --root=*) ROOT=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

[ $RUNNER = 1 ] || [ $COORDINATOR = 1 ] || { usage >&2; die "choose --runner and/or --coordinator"; }
[ $PURGE = 0 ] || [ $UNINSTALL = 1 ] || die "--purge goes with --uninstall"
case $PREFIX in
  /*) ;;
  *) die "--prefix must be an absolute path, got: $PREFIX" ;;
esac
case $PREFIX in
  *[\#\&\\\ ]*) die "--prefix must not contain spaces, #, & or backslashes" ;;
esac
case $ROOT in
  /*) ;;
  *) ROOT=$(pwd)/$ROOT ;;
esac
PREFIX=${PREFIX%/}
# R: the root as a path prefix, empty for the real one.
R=${ROOT%/}
[ -z "$R" ] || [ -d "$R" ] || die "--root $ROOT: no such directory"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
UNIT_DIR=$R/etc/systemd/system
CHANGED=0

if [ $DRY_RUN = 0 ] && [ "$(id -u)" != 0 ]; then
  [ -n "$R" ] || die "run it as root (sudo $0 ...), or try --dry-run"
  [ $USERS = 0 ] || die "creating users and chowning needs root: run it as root, or pass --no-users"
fi
if [ $USERS = 1 ] && [ -n "$R" ] && ! [ -f "$R/etc/passwd" ]; then
  die "$R/etc/passwd does not exist: users are created in the root's own passwd files (useradd --prefix); seed them or pass --no-users"
fi

# did PAST BASE WHAT: "created dir X", or "would create dir X" under --dry-run.
did() {
  if [ $DRY_RUN = 1 ]; then printf 'would %s %s\n' "$2" "$3"; else printf '%s %s\n' "$1" "$3"; fi
}
act() {
  [ $DRY_RUN = 1 ] || "$@"
}
# The root's own account databases: getent for the real one (NSS), the files otherwise.
passwd_entry() {
  if [ -z "$R" ]; then getent passwd "$1" || true; else grep -m1 "^$1:" "$R/etc/passwd" 2>/dev/null || true; fi
}
group_entry() {
  if [ -z "$R" ]; then getent group "$1" || true; else grep -m1 "^$1:" "$R/etc/group" 2>/dev/null || true; fi
}
# useradd, usermod, userdel and groupdel on the root's files.
shadow_tool() {
  local tool=$1
  shift
  if [ -z "$R" ]; then act "$tool" "$@"; else act "$tool" --prefix "$R" "$@"; fi
}
systemd_running() {
  [ -z "$R" ] && [ -d /run/systemd/system ]
}
nologin_shell() {
  local s
  for s in /usr/sbin/nologin /sbin/nologin; do
    if [ -x "$s" ]; then printf '%s\n' "$s"; return; fi
  done
  printf '/usr/sbin/nologin\n'
}

ensure_user() { # NAME HOME COMMENT
  local name=$1 home=$2 comment=$3
  if [ $USERS = 0 ]; then
    printf 'user %s: skipped (--no-users)\n' "$name"
    return
  fi
  if [ -n "$(passwd_entry "$name")" ]; then
    printf 'user %s: exists\n' "$name"
    return
  fi
  local group_flag=(--user-group)
  # A group of that name left behind (say by an earlier userdel) becomes its primary group.
  [ -z "$(group_entry "$name")" ] || group_flag=(--gid "$name")
  shadow_tool useradd --system "${group_flag[@]}" --home-dir "$home" --no-create-home \
    --shell "$(nologin_shell)" --comment "$comment" "$name"
  did created create "system user $name (home $home, shell $(nologin_shell))"
}

# The runner's Docker access: membership for tools run as the user (sudo -u),
# SupplementaryGroups=docker for the service, cleared by a drop-in without Docker.
ensure_docker_group() {
  local name=$1 dropin_dir=$UNIT_DIR/rbtk-runner.service.d
  local dropin=$dropin_dir/10-no-docker.conf
  local docker
  docker=$(group_entry docker)
  if [ -z "$docker" ]; then
    if [ -f "$dropin" ]; then
      printf 'group docker: none on this host; %s in place\n' "${dropin#"$R"}"
    else
      act mkdir -p "$dropin_dir"
      if [ $DRY_RUN = 0 ]; then
        cat >"$dropin" <<'EOF'
# Written by systemd/install.sh: this host has no docker group (Docker is not
# installed), and systemd refuses to start a unit whose SupplementaryGroups=
# does not exist. The runner can still run shell jobs. Install Docker, then run
# install.sh --runner again: it removes this file.
[Service]
SupplementaryGroups=
EOF
        chmod 0644 "$dropin"
      fi
      CHANGED=1
      did wrote write "${dropin#"$R"} (no docker group on this host: the unit runs without it; shell jobs only)"
    fi
    return
  fi
  if [ -f "$dropin" ]; then
    act rm -f "$dropin"
    act rmdir "$dropin_dir" 2>/dev/null || true
    CHANGED=1
    did removed remove "${dropin#"$R"} (a docker group exists now)"
  fi
  [ $USERS = 1 ] || return 0
  if printf '%s\n' "$docker" | cut -d: -f4 | tr ',' '\n' | grep -qx "$name"; then
    printf 'group docker: %s is a member\n' "$name"
  else
    shadow_tool usermod --append --groups docker "$name"
    did added add "$name to group docker"
  fi
}

ensure_dir() { # PATH MODE OWNER GROUP
  local path=$1 mode=$2 owner=$3 group=$4
  local dir=$R$path want_owner="" have
  if [ $USERS = 1 ]; then
    local uid gid
    uid=$(passwd_entry "$owner" | cut -d: -f3)
    gid=$(group_entry "$group" | cut -d: -f3)
    if [ -z "$uid" ] || [ -z "$gid" ]; then
      [ $DRY_RUN = 1 ] || die "cannot find user $owner or group $group"
      uid=$owner gid=$group
    fi
    want_owner=$uid:$gid
  fi
  if ! [ -d "$dir" ]; then
    act mkdir -p "$dir"
    act chmod "$mode" "$dir"
    [ -z "$want_owner" ] || act chown "$want_owner" "$dir"
    local how="$mode $owner:$group"
    [ -n "$want_owner" ] || how="$mode, ownership skipped: --no-users"
    did created create "dir $path ($how)"
    return
  fi
  have=$(stat -c '%a %u:%g' "$dir")
  local want="${mode#0} ${want_owner:-${have#* }}"
  if [ "$have" = "$want" ]; then
    printf 'dir %s: exists (%s %s:%s)\n' "$path" "$mode" "$owner" "$group"
    return
  fi
  act chmod "$mode" "$dir"
  [ -z "$want_owner" ] || act chown "$want_owner" "$dir"
  did fixed fix "dir $path (was $have, now $mode $owner:$group)"
}

install_unit() { # UNIT BIN
  local unit=$1 bin=$2 target=$UNIT_DIR/$1 rendered=$WORK/$1
  sed "s#^ExecStart=/usr/bin/#ExecStart=$PREFIX/bin/#" "$SRC/$unit" >"$rendered"
  if ! [ -x "$PREFIX/bin/$bin" ] && ! [ -x "$R$PREFIX/bin/$bin" ]; then
    local found
    found=$(command -v "$bin" 2>/dev/null || true)
    printf 'note: %s/bin/%s does not exist (yet): install rbtk there%s\n' "$PREFIX" "$bin" \
      "${found:+, or pass --prefix $(dirname "$(dirname "$found")") (found $found)}"
  fi
  if [ -f "$target" ] && cmp -s "$rendered" "$target"; then
    printf 'unit %s: unchanged\n' "${target#"$R"}"
    return
  fi
  local verb=installed base=install
  [ ! -f "$target" ] || { verb=updated; base=update; }
  act mkdir -p "$UNIT_DIR"
  act install -m 0644 "$rendered" "$target"
  CHANGED=1
  did "$verb" "$base" "unit ${target#"$R"} (ExecStart $PREFIX/bin/$bin)"
}

coordinator_env() {
  local file=$R/etc/rbtk/coordinator.env
  if [ -f "$file" ]; then
    printf 'file /etc/rbtk/coordinator.env: exists (left as it is)\n'
    return
  fi
  if [ $DRY_RUN = 0 ]; then
    cat >"$file" <<'EOF'
# rbtk-coordinator settings, read by rbtk-coordinator.service (README: Configuration).
# Every flag of "rbtk-coordinator serve" has an RBTK_ variable; uncomment to change.
#RBTK_LISTEN=127.0.0.1:7420
#RBTK_OFFLINE_AFTER=60s
#RBTK_HEARTBEAT_INTERVAL=15s
#RBTK_TOKEN_ROTATION=1h
#RBTK_LOG_LEVEL=info
EOF
    chmod 0640 "$file"
    if [ $USERS = 1 ]; then chown "0:$(group_entry rbtk | cut -d: -f3)" "$file"; fi
  fi
  local how="0640 root:rbtk"
  [ $USERS = 1 ] || how="0640, ownership skipped: --no-users"
  did wrote write "file /etc/rbtk/coordinator.env ($how, every setting commented out)"
}

uninstall_unit() { # UNIT
  local unit=$1 target=$UNIT_DIR/$1 link
  if systemd_running && { systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; }; then
    # A runner drains on SIGTERM: this waits for its jobs (TimeoutStopSec at most).
    act systemctl disable --now "$unit"
    did "stopped and disabled" "stop and disable" "$unit"
  fi
  for link in "$UNIT_DIR"/*.wants/"$unit"; do
    [ -L "$link" ] || continue
    act rm -f "$link"
    did removed remove "${link#"$R"} (enabled link)"
  done
  if [ -d "$target.d" ]; then
    act rm -rf "$target.d"
    CHANGED=1
    did removed remove "${target#"$R"}.d"
  fi
  if [ -f "$target" ]; then
    act rm -f "$target"
    CHANGED=1
    did removed remove "unit ${target#"$R"}"
  else
    printf 'unit %s: not installed\n' "${target#"$R"}"
  fi
}

purge() { # USER DIR...
  local name=$1
  shift
  local path id
  for path in "$@"; do
    if [ -f "$R$path/runner.yaml" ]; then
      id=$(sed -n 's/^runner_id: *//p' "$R$path/runner.yaml" | tr -d "\"'")
      [ -z "$id" ] || printf 'note: runner %s stays registered at its coordinator until revoked there: rbtk runner revoke %s\n' "$id" "$id"
    fi
    if [ -e "$R$path" ]; then
      act rm -rf "$R$path"
      did removed remove "dir $path"
    else
      printf 'dir %s: not there\n' "$path"
    fi
  done
  if [ $USERS = 0 ]; then
    printf 'user %s: skipped (--no-users)\n' "$name"
    return
  fi
  if [ -n "$(passwd_entry "$name")" ]; then
    shadow_tool userdel "$name"
    did removed remove "user $name"
  else
    printf 'user %s: not there\n' "$name"
  fi
  # userdel leaves the user's own group where USERGROUPS_ENAB is off.
  if [ -n "$(group_entry "$name")" ] && { [ $DRY_RUN = 1 ] || [ -z "$(passwd_entry "$name")" ]; }; then
    shadow_tool groupdel "$name"
    did removed remove "group $name"
  fi
}

reload() {
  if [ $CHANGED = 0 ]; then
    return
  elif systemd_running; then
    act systemctl daemon-reload
    did ran run "systemctl daemon-reload"
  elif [ -n "$R" ]; then
    printf 'systemd: not reloaded (--root %s)\n' "$ROOT"
  else
    printf 'systemd: not running here (no /run/systemd/system); skipped daemon-reload\n'
  fi
}

[ $DRY_RUN = 0 ] || printf 'dry run: nothing is changed\n'
if [ $UNINSTALL = 0 ]; then
  if [ $RUNNER = 1 ]; then
    ensure_user rbtk-runner /var/lib/rbtk-runner "rbtk runner"
    ensure_dir /etc/rbtk-runner 0700 rbtk-runner rbtk-runner
    ensure_dir /var/lib/rbtk-runner 0750 rbtk-runner rbtk-runner
    install_unit rbtk-runner.service rbtk-runner
    ensure_docker_group rbtk-runner
  fi
  if [ $COORDINATOR = 1 ]; then
    ensure_user rbtk /var/lib/rbtk "rbtk coordinator"
    ensure_dir /etc/rbtk 0750 root rbtk
    coordinator_env
    ensure_dir /var/lib/rbtk 0700 rbtk rbtk
    install_unit rbtk-coordinator.service rbtk-coordinator
  fi
  reload
  if [ $RUNNER = 1 ]; then
    printf 'next: sudo -u rbtk-runner %s/bin/rbtk-runner register --url URL --token TOKEN && sudo systemctl enable --now rbtk-runner\n' "$PREFIX"
  fi
  if [ $COORDINATOR = 1 ]; then
    printf 'next: sudo systemctl enable --now rbtk-coordinator (the admin token lands in /var/lib/rbtk/admin.token)\n'
  fi
else
  [ $RUNNER = 0 ] || uninstall_unit rbtk-runner.service
  [ $COORDINATOR = 0 ] || uninstall_unit rbtk-coordinator.service
  reload
  if [ $PURGE = 1 ]; then
    [ $RUNNER = 0 ] || purge rbtk-runner /etc/rbtk-runner /var/lib/rbtk-runner
    [ $COORDINATOR = 0 ] || purge rbtk /etc/rbtk /var/lib/rbtk
  else
    [ $RUNNER = 0 ] || printf 'kept /etc/rbtk-runner (the registration), /var/lib/rbtk-runner and user rbtk-runner (--purge removes them)\n'
    [ $COORDINATOR = 0 ] || printf 'kept /etc/rbtk, /var/lib/rbtk (the database) and user rbtk (--purge removes them)\n'
  fi
fi
