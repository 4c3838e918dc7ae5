# Sourced by the bench/device scripts on a lent NVIDIA machine: unpacks the Vulkan loader
# (.gl/*.deb), Deno and its module cache (.device/deno.xz, .device/deno_dir.tar.xz), points Vulkan
# at the NVIDIA driver and exits unless WebGPU sees the NVIDIA adapter. Make the carried folders
# here first (they are git-ignored):
#   .gl:     the device README's apt-get download of libvulkan1 libegl1 libglvnd0 libopengl0
#            libgl1 libglx0 libgles2 (amd64)
#   .device: xz -T2 -6 -c "$(readlink -f "$(which deno)")" > .device/deno.xz
#            DENO_DIR=/tmp/dd deno cache mod.ts bench/*.ts tests/*.ts &&
#            tar -C /tmp/dd -cf - . | xz -T2 -6 > .device/deno_dir.tar.xz
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/bin /tmp/dd
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
[ -x /tmp/bin/deno ] || { xz -T0 -dc .device/deno.xz >/tmp/bin/deno && chmod +x /tmp/bin/deno; }
xz -T0 -dc .device/deno_dir.tar.xz | tar -C /tmp/dd -xf -
export PATH=/tmp/bin:$PATH DENO_DIR=/tmp/dd DENO_NO_UPDATE_CHECK=1
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f $icd ] && export VK_DRIVER_FILES=$icd
nvidia-smi -L
deno run --cached-only -A mod.ts info 2>&1 | tee "$OUT/info.log"
if ! grep -q "NVIDIA" "$OUT/info.log" || grep -q "(software)" "$OUT/info.log"; then
  echo "WebGPU did not find the NVIDIA adapter; stopping"
  exit 1
fi
