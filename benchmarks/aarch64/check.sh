#!/usr/bin/env bash
# The runtime wheel on 64-bit Arm: an arm64 Debian Bookworm root (what 64-bit Raspberry Pi OS is built
# on: glibc 2.36, Python 3.11) under qemu user emulation, each runtime extra installed from the
# registry's aarch64 wheels, every bundled model file run on real AFLW2000-3D faces, and the landmarks
# compared with the same run on this machine. Emulated timings are not Pi timings: none are reported.
#
#   sudo bash benchmarks/aarch64/check.sh            # ~10-20 minutes; WORK=/tmp/edgemark-arm64 by default
#
# Needs root (debootstrap, chroot, mounts), Debian's debootstrap and qemu-user-static (installed here
# with apt-get when missing), the package registries, and the shared data (EDGEMARK_SHARED or ../shared).
# Writes $WORK/parity.md (the table) and $WORK/parity.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-/tmp/edgemark-arm64}
FACES=${FACES:-50}
SHARED=${EDGEMARK_SHARED:-$ROOT/../shared}
EXTRAS=${EXTRAS:-"onnx tflite openvino"}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}  # seconds per emulated run: OpenVINO has hung here under qemu (see README)
CHROOT=$WORK/root
PY=${PYTHON:-$ROOT/.venv/bin/python}

[ "$(id -u)" = 0 ] || { echo "check.sh: run as root (debootstrap and chroot need it)" >&2; exit 2; }
[ -d "$SHARED/data/aflw2000-3d" ] || { echo "check.sh: no AFLW2000-3D under $SHARED (set EDGEMARK_SHARED)" >&2; exit 2; }
command -v debootstrap >/dev/null && [ -x /usr/bin/qemu-aarch64-static ] || {
  apt-get update -qq && apt-get install -y -qq debootstrap qemu-user-static >/dev/null; }
mkdir -p "$WORK"
# qemu-user-static ships the binfmt rule; register it when no service did (containers, minimal VMs)
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
fi

# 1. The arm64 root (kept between runs). The mirror is the one this machine's apt already uses.
MIRROR=$( (grep -h -m1 -oE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
           2>/dev/null || true) | head -1 | awk '{print $2}')
if [ ! -x "$CHROOT/usr/bin/python3" ]; then
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$CHROOT" ${MIRROR:+"$MIRROR"}
fi
cp /etc/ssl/certs/ca-certificates.crt "$CHROOT/etc/ssl/certs/host-ca.crt"

# 2. The runtime wheel, built here (pure Python: the same file installs on arm64).
rm -rf "$WORK/dist" && mkdir -p "$WORK/dist"
"$PY" -m pip wheel --no-deps --no-build-isolation -q -w "$WORK/dist" "$ROOT"
rm -rf "$CHROOT/opt/edgemark" && mkdir -p "$CHROOT/opt/edgemark/faces/images"
cp "$WORK"/dist/edgemark-*.whl "$ROOT/benchmarks/aarch64/parity_run.py" "$CHROOT/opt/edgemark/"
WHEEL=$(basename "$WORK"/dist/edgemark-*.whl)

# 3. FACES real faces (the first ones of the test set), with their ground-truth boxes.
"$PY" - "$SHARED" "$CHROOT/opt/edgemark/faces" "$FACES" <<'EOF'
import shutil, sys
from pathlib import Path
import numpy as np
shared, out, n = Path(sys.argv[1]) / "data" / "aflw2000-3d", Path(sys.argv[2]), int(sys.argv[3])
names = (shared / "names.txt").read_text().split()[:n]
lm = np.load(shared / "landmarks68_reannotated.npy")[:n]
np.save(out / "boxes.npy", np.concatenate([lm.min(1), lm.max(1)], axis=1).astype(np.float32))
(out / "names.txt").write_text("\n".join(names) + "\n")
for name in names:
    shutil.copy(shared / "images" / name, out / "images" / name)
EOF

# 4. This machine's run, one venv per extra as a user would install it.
for extra in $EXTRAS; do
  if [ ! -x "$WORK/x86-$extra/bin/python" ]; then python3 -m venv "$WORK/x86-$extra"; fi
  "$WORK/x86-$extra/bin/pip" install -q --force-reinstall "$WORK/dist/$WHEEL[$extra]"
  (cd "$WORK" && "$WORK/x86-$extra/bin/python" "$CHROOT/opt/edgemark/parity_run.py" \
      "$CHROOT/opt/edgemark/faces" "$WORK/x86-$extra.npz")
done

# 5. The arm64 run. LiteRT's XNNPACK crashes in allocate_tensors with /sys mounted; OpenVINO needs /sys
#    (it reads MIDR_EL1 there): so /sys is mounted for the openvino run only. pip gets a clean environment.
mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
cleanup() { umount "$CHROOT/sys" 2>/dev/null || true; umount "$CHROOT/proc" 2>/dev/null || true; }
trap cleanup EXIT
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
for extra in $EXTRAS; do
  if [ "$extra" = openvino ]; then mountpoint -q "$CHROOT/sys" || mount -t sysfs sys "$CHROOT/sys"
  else umount "$CHROOT/sys" 2>/dev/null || true; fi
  rm -f "$CHROOT/opt/edgemark/arm64-$extra.npz" "$WORK/arm64-$extra.npz"
  if timeout "$RUN_TIMEOUT" chroot "$CHROOT" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin \
      PIP_CERT=/etc/ssl/certs/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 /bin/sh -ec "
        cd /opt/edgemark
        [ -x venv-$extra/bin/python ] || python3 -m venv venv-$extra
        venv-$extra/bin/pip install -q --force-reinstall '$WHEEL[$extra]'
        venv-$extra/bin/python parity_run.py faces arm64-$extra.npz"; then
    cp "$CHROOT/opt/edgemark/arm64-$extra.npz" "$WORK/"
  else
    echo "check.sh: the arm64 run with [$extra] failed or timed out (exit $?); it is reported, the rest goes on" >&2
  fi
done

# 6. The table: largest landmark difference per file, arm64 vs x86.
"$PY" - "$WORK" $EXTRAS <<'EOF'
import json, sys
from pathlib import Path
import numpy as np
work, extras = Path(sys.argv[1]), sys.argv[2:]
rows, record = [], {}
for extra in extras:
    x86 = np.load(work / f"x86-{extra}.npz")
    if not (work / f"arm64-{extra}.npz").is_file():
        for name in sorted(k for k in x86.files if k != "info"):
            record[name] = {"extra": extra, "result": "no arm64 result (the emulated run crashed or timed out)"}
            rows.append(f"| `{name}` | [{extra}] | – | no arm64 result: crashed or timed out under emulation | – |")
        continue
    arm = np.load(work / f"arm64-{extra}.npz")
    info_x, info_a = json.loads(str(x86["info"])), json.loads(str(arm["info"]))
    for name in sorted(k for k in x86.files if k != "info"):
        d = np.linalg.norm(x86[name].astype(np.float64) - arm[name], axis=-1)
        record[name] = {"extra": extra, "faces": int(len(d)), "max_px": float(d.max()), "mean_px": float(d.mean()),
                        "x86": info_x, "arm64": info_a}
        rows.append(f"| `{name}` | [{extra}] | {len(d)} | {d.max():.2e} | {d.mean():.2e} |")
table = ["| bundled file | extra | faces | max landmark difference (px) | mean (px) |", "|---|---|---:|---:|---:|", *rows]
(work / "parity.md").write_text("\n".join(table) + "\n")
(work / "parity.json").write_text(json.dumps(record, indent=2) + "\n")
print("\n".join(table))
EOF
