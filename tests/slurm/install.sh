#!/usr/bin/env bash
# Install a single-node Slurm (+ munge, slurmdbd, MariaDB) from Debian packages
# for tests/test_slurm_cluster.py. Idempotent. Never fails the caller merely
# because it cannot install: it then says the Slurm test will be skipped.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
BINARIES=(slurmctld slurmd sbatch sacct munged slurmdbd mariadbd)

# daemons live in /usr/sbin, which a non-root PATH may lack
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
for b in "${BINARIES[@]}"; do
  command -v "$b" >/dev/null 2>&1 || missing+=("$b")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "slurm install: already installed (${BINARIES[*]}); nothing to do"
  exit 0
fi

skip() {
  echo "slurm install: $1; the Slurm test will be skipped"
  exit 0
}

command -v apt-get >/dev/null 2>&1 || skip "no apt-get on this machine"

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  skip "not root and no usable (passwordless) sudo"
fi

echo "slurm install: missing ${missing[*]}; installing ${PACKAGES[*]}"
log=$(mktemp)
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 \
   || ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -o Dpkg::Use-Pty=0 "${PACKAGES[@]}" >>"$log" 2>&1; then
  tail -n 20 "$log" >&2
  rm -f "$log"
  skip "apt-get failed (see above)"
fi
rm -f "$log"

for b in "${BINARIES[@]}"; do
  command -v "$b" >/dev/null 2>&1 || skip "installed, but '$b' is still missing"
done
echo "slurm install: done"
