#!/usr/bin/env bash
# Rates systemd/tailops.service with `systemd-analyze security --offline=yes`
# (systemd 252; PID 1 need not be systemd) and fails when its exposure is
# above 2.5, or when an opt-in drop-in under systemd/opt-in/ costs more or
# less than the "# exposure: +X.Y" its comment documents. Also checks the
# sysusers.d and tmpfiles.d files parse.
set -euo pipefail
cd "$(dirname "$0")/../.."
MAX=2.5
unit=systemd/tailops.service

exposure() { # unit file -> "1.5"
  systemd-analyze security --offline=yes "$1" 2>&1 |
    sed -n 's/^→ Overall exposure level for [^:]*: \([0-9.]*\) .*/\1/p'
}

base="$(exposure "$unit")"
[ -n "$base" ] || { echo "no exposure from systemd-analyze for $unit" >&2; exit 1; }
echo "$unit: exposure $base (limit $MAX)"
# --threshold is in tenths (0-100).
systemd-analyze security --offline=yes --threshold=25 "$unit" >/dev/null 2>&1 ||
  { echo "$unit: exposure $base is above $MAX" >&2; systemd-analyze security --offline=yes "$unit" | grep '✗' >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for dropin in systemd/opt-in/*.conf; do
  documented="$(sed -n 's/^# exposure: +\([0-9.]*\).*/\1/p' "$dropin")"
  [ -n "$documented" ] || { echo "$dropin: no '# exposure: +X.Y' line" >&2; exit 1; }
  # A drop-in's [Service] lines apply after the unit's: concatenating them
  # into one file is what systemd does with the drop-in.
  cat "$unit" "$dropin" >"$tmp/tailops.service"
  with="$(exposure "$tmp/tailops.service")"
  cost="$(awk -v a="$with" -v b="$base" 'BEGIN { printf "%.1f", a - b }')"
  echo "$dropin: exposure $with (+$cost, documented +$documented)"
  [ "$cost" = "$documented" ] || { echo "$dropin: costs +$cost, its comment says +$documented" >&2; exit 1; }
done

# sysusers.d and tmpfiles.d applied to an empty root: the user exists, the
# directories get the documented owner and mode.
r="$tmp/root"
mkdir -p "$r/etc" "$r/usr/lib/sysusers.d" "$r/usr/lib/tmpfiles.d"
cp systemd/sysusers.d/tailops.conf "$r/usr/lib/sysusers.d/"
cp systemd/tmpfiles.d/tailops.conf "$r/usr/lib/tmpfiles.d/"
systemd-sysusers --root="$r"
grep -q '^tailops:' "$r/etc/passwd" || { echo "sysusers.d did not create tailops" >&2; exit 1; }
systemd-tmpfiles --root="$r" --create tailops.conf
[ "$(stat -c '%a' "$r/var/lib/tailops")" = 700 ] || { echo "tmpfiles.d: /var/lib/tailops mode" >&2; exit 1; }
echo "unit, drop-ins, sysusers.d and tmpfiles.d OK"
