#!/bin/bash
# 100 consecutive runs of apps/mpi/mpi_ring under each launcher (Open MPI's
# mpirun, MPICH's mpiexec; each with its default binding) and each platform,
# one LWK core per rank (mote's default). Prints, per launcher and platform, how
# many ended as natively (status 0, both ranks' "ok" lines), hung (60 s) or
# failed; a failed run's output is kept in $OUT/bad-PLATFORM-N.
# Run from the repository root after `cargo xtask test` (or build + `cargo xtask apps`).
set -u
M=target/release/mote; A=target/apps; OUT=${OUT:-/tmp/mote-mpi-loop}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for pf in hosted kvm; do
  for l in "mpirun.openmpi -n 2|$A/openmpi/mpi_ring" "mpiexec.mpich -n 2|$A/mpi_ring"; do
    launcher=${l%%|*}; prog=${l##*|}; ok=0; hung=0; bad=0; s=$(date +%s)
    for i in $(seq 100); do
      timeout 60 $launcher $M run --platform $pf -- $prog > "$OUT/out" 2>&1; rc=$?
      if [ $rc = 0 ] && [ "$(grep -c ' ok$' "$OUT/out")" = 2 ]; then ok=$((ok+1))
      elif [ $rc = 124 ]; then hung=$((hung+1))
      else bad=$((bad+1)); cp "$OUT/out" "$OUT/bad-$pf-$i"; fi
    done
    echo "$pf | $launcher | ok $ok, hung $hung, failed $bad | $(( $(date +%s) - s )) s"
  done
done
