#!/usr/bin/env bash
# Fetches the ONNX Runtime 1.21 C/C++ headers (Debian trixie's libonnxruntime-dev) into third_party/onnxruntime/.
#
# The machine's own apt configuration is left alone (it stays on bookworm): the trixie index is read through
# a private sources list and a private state directory, and the .deb is only downloaded and unpacked with
# `dpkg -x`, never installed. Idempotent: does nothing when the headers are already there.
# The headers are git-ignored (/third_party/); never commit them.
#
# Usage: scripts/fetch-ort-headers.sh [dest]      (dest defaults to <repo>/third_party/onnxruntime)
# Env:   DYNCONV_ORT_DEB_MIRROR (default: the Debian archive this machine's own apt sources use)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$here/third_party/onnxruntime}"
header_rel="usr/include/onnxruntime/onnxruntime_c_api.h"

if [ -f "$dest/$header_rel" ]; then
  echo "ONNX Runtime headers already in $dest"
  exit 0
fi

# The archive this machine already uses for Debian's main suite (deb822 .sources or a one-line sources.list).
machine_mirror() {
  { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}'
  } | grep -v -- '-security' | head -n 1 || true
}
mirror="${DYNCONV_ORT_DEB_MIRROR:-$(machine_mirror)}"
if [ -z "$mirror" ]; then
  echo "fetch-ort-headers: no Debian archive found in this machine's apt sources; set DYNCONV_ORT_DEB_MIRROR" >&2
  exit 1
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/dynconv-ort-headers.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/debs"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""
[ -f "$keyring" ] && signed="[signed-by=$keyring] "
echo "deb ${signed}${mirror} trixie main" > "$work/sources.list"

apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache::Archives=$work/archives"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "APT::Architecture=amd64"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)

echo "Reading the Debian trixie package index (private apt state in $work)"
apt-get "${apt_opts[@]}" -qq update
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download libonnxruntime-dev)

deb="$(ls "$work"/debs/libonnxruntime-dev_*.deb | head -n1)"
[ -n "$deb" ] || { echo "libonnxruntime-dev was not downloaded" >&2; exit 1; }
mkdir -p "$dest"
dpkg -x "$deb" "$dest"
if [ ! -f "$dest/$header_rel" ]; then
  echo "unpacked $deb but $header_rel is missing" >&2
  exit 1
fi
basename "$deb" > "$dest/PACKAGE"
echo "ONNX Runtime headers from $(basename "$deb") in $dest/usr/include/onnxruntime"
