#!/usr/bin/env bash
# Builds sandscore's base images from Debian bookworm packages, with no
# registry (debootstrap + docker import):
#   sandscore/base:bookworm        minbase + python3-minimal (what builds a
#                                  score.py at container start), pruned of docs
#                                  and caches; apt works
#   sandscore/base:bookworm-glibc  only the C/C++ runtime libraries, /etc/passwd
#                                  and /tmp: what the sandscore binary needs
# Both carry the unprivileged user sandscore (uid/gid 10001). Skips an image
# that already exists at this REVISION (bump it when the contents change).
# The Debian mirror is the one apt on this machine uses.
set -euo pipefail
cache=${CACHE:-$HOME/.cache/sandscore}/base
mkdir -p "$cache"
REVISION=2
have() {
  [ "$(docker image inspect -f '{{index .Config.Labels "io.sandscore.base.revision"}}' "$1" 2>/dev/null)" = "$REVISION" ]
}
if have sandscore/base:bookworm && have sandscore/base:bookworm-glibc; then
  echo "base images present"; exit 0
fi

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(grep -m1 -oE 'https?://[^ ]+' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "cannot find a Debian mirror in apt's sources" >&2; exit 1; }

root=$(mktemp -d)
slim=$(mktemp -d)
trap 'rm -rf "$root" "$slim"' EXIT
if [ ! -f "$cache/minbase-python.tar" ]; then
  debootstrap --variant=minbase --include=python3-minimal bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  tar --numeric-owner -C "$root" -cf "$cache/minbase-python.tar" .
else
  tar --numeric-owner -C "$root" -xf "$cache/minbase-python.tar"
fi

# The user every image runs as.
echo 'sandscore:x:10001:10001:sandscore:/nonexistent:/usr/sbin/nologin' >>"$root/etc/passwd"
echo 'sandscore:x:10001:' >>"$root/etc/group"

# minbase, pruned: documentation, man pages, locales, charset converters
# (iconv beyond UTF-8; 8 MB), apt lists and caches, logs.
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian}/* "$root"/usr/lib/x86_64-linux-gnu/gconv/*.so \
  "$root"/var/cache/apt/*.bin \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/*
mkdir -p "$root/usr/share/locale"
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' --change "LABEL io.sandscore.base.revision=$REVISION" - sandscore/base:bookworm

# glibc only: the loader, libc, libm, libgcc_s, libstdc++ (ONNX Runtime's), their links.
lib=usr/lib/x86_64-linux-gnu
mkdir -p "$slim/$lib" "$slim/lib64" "$slim/etc" "$slim/tmp"
for f in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libgcc_s.so.1 libstdc++.so.6 libdl.so.2 librt.so.1 libpthread.so.0; do
  cp -L "$root/$lib/$f" "$slim/$lib/$f"
done
ln -s ../$lib/ld-linux-x86-64.so.2 "$slim/lib64/ld-linux-x86-64.so.2"
ln -s usr/lib "$slim/lib"
chmod 1777 "$slim/tmp"
printf 'root:x:0:0:root:/root:/nonexistent\nsandscore:x:10001:10001:sandscore:/nonexistent:/nonexistent\n' >"$slim/etc/passwd"
printf 'root:x:0:\nsandscore:x:10001:\n' >"$slim/etc/group"
tar --numeric-owner -C "$slim" -c . | docker import --change "LABEL io.sandscore.base.revision=$REVISION" - sandscore/base:bookworm-glibc
docker image ls sandscore/base
