#!/usr/bin/env bash
# Debian packages the real-consumer tests need. Installed as root in CI (CI=true);
# elsewhere, missing tools make those tests skip with a message naming the package.
set -euo pipefail
PACKAGES=(
  dnsmasq-base  # dnsmasq --test on the rendered PXE config
  cloud-init    # cloud-init schema on the rendered autoinstall user-data
  slurmctld     # slurmctld -D with the rendered slurm.conf, gres.conf, topology.conf
  slurm-client  # scontrol show topology / node against that slurmctld
  prometheus    # promtool check config on the rendered prometheus.yml
  debootstrap   # the Debian 12 root filesystem the playbooks run against (chroot connection)
  iproute2      # ip netns and veth: the Slurm control-plane test gives each node its own network
  util-linux    # unshare: the same test's namespaces
  apt-utils     # apt-ftparchive: the stand-in apt repositories of NVIDIA's and the node OS's packages
  gnupg         # gpg: signs those repositories and their RPMs
  rpm           # rpmbuild and rpmsign: the stand-in dnf repository's packages
  createrepo-c  # createrepo_c and modifyrepo_c: its repodata and the nvidia-driver module streams
  udev          # udevadm test on the rdma role's aperture-device rule (GCP A3 Mega)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: not root; tests needing ${missing[*]} will skip (CI installs them)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
