#!/usr/bin/env bash
# Builds the release tarball: target/release-dist/ezarch-VERSION-x86_64-unknown-linux-musl.tar.gz
# holding the static binary, the env file, the systemd unit and the README, plus SHA256SUMS.
# Prints the tarball's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
rustup target add "$target" >/dev/null 2>&1 || true
# libsodium (CURVE) is built from its bundled C source: for musl, with musl's compiler
# (Debian: apt-get install musl-tools).
if ! command -v musl-gcc >/dev/null 2>&1; then
  echo "release.sh: musl-gcc is needed to build libsodium for $target (apt-get install musl-tools)" >&2
  exit 1
fi
export CC_x86_64_unknown_linux_musl=musl-gcc
cargo build --release --locked --quiet --target "$target"
binary="target/$target/release/ezarch"
version=$("$binary" --version | awk '{print $2}')
name="ezarch-$version-$target"
out=target/release-dist
rm -rf "$out/$name"
mkdir -p "$out/$name"
cp "$binary" env .deploy/ezarch.service README.md "$out/$name/"
strip "$out/$name/ezarch" 2>/dev/null || true
tar -C "$out" --owner=0 --group=0 --sort=name -czf "$out/$name.tar.gz" "$name"
(cd "$out" && sha256sum "$name.tar.gz" > SHA256SUMS)
echo "$out/$name.tar.gz"
