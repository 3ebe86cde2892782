#!/usr/bin/env bash
# Build facer's image with no network inside the build: the wheels are downloaded here first (the
# wheelhouse), then the image is built from them alone. The test (tests/test_container.py) and a
# person run the same steps.
#
#   container/build.sh [TAG]                      # default TAG localhost/facer:latest
#   container/build.sh --wheelhouse DIR           # only download the wheels into DIR (on a
#                                                 # connected machine, for an offline build)
#
# Environment:
#   ENGINE       podman (default) or docker
#   BASE         the base image of both stages; default localhost/debian-python:bookworm, which
#                this script makes with debootstrap (from the Debian mirror apt uses) when the
#                engine does not have it: no image registry is needed. Give python:3.11-slim (or
#                any image with Python 3.11+) where a registry is reachable.
#   ONNXRUNTIME  onnxruntime (default) or onnxruntime-gpu (with a CUDA BASE)
#   GPU=1        the GPU image: ONNXRUNTIME=onnxruntime-gpu and, unless BASE is given,
#                BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 (pulled: needs a registry)
#   CACHE_DIR    wheelhouses and the build context (default ~/.cache/facer-container)
#   PYTHON       the Python whose pip downloads the wheels (default python3)
#   PYVERSION    the image's Python (default: asked of the base; 3.11 with --wheelhouse)
#
# The wheelhouse is kept, keyed by a hash of pyproject.toml, the Dockerfile, container/ and the
# base's Python version: a second build downloads nothing, and the engine's layer cache keeps the
# dependency layer until one of those changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
only_wheels=
if [ "${1:-}" = --wheelhouse ]; then
    only_wheels=${2:?usage: container/build.sh --wheelhouse DIR}
    mkdir -p "$only_wheels"
    only_wheels=$(cd "$only_wheels" && pwd)
fi
tag=${1:-${TAG:-localhost/facer:latest}}
engine=${ENGINE:-podman}
if [ "${GPU:-0}" = 1 ]; then
    base=${BASE:-nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04}
    onnxruntime=${ONNXRUNTIME:-onnxruntime-gpu}
else
    base=${BASE:-localhost/debian-python:bookworm}
    onnxruntime=${ONNXRUNTIME:-onnxruntime}
fi
cache=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/facer-container}
python=${PYTHON:-python3}
mkdir -p "$cache"
say() { printf '+ %s\n' "$*" >&2; }

# -- the wheelhouse ----------------------------------------------------------------------------
download_wheels() {  # download_wheels DIR: every wheel the image installs, for its Python and Linux
    local dir=$1 swap=opencv-python=opencv-python-headless platforms=() glibc
    [ "$onnxruntime" = onnxruntime ] || swap="$swap,onnxruntime=$onnxruntime"
    "$python" "$root/container/requirements.py" --pyproject "$root/pyproject.toml" --drop insightface \
        --swap "$swap" > "$dir/requirements.txt"
    echo "setuptools>=70.1" >> "$dir/requirements.txt"   # to build facer's own wheel in the image
    for glibc in 2_17 2_24 2_27 2_28 2_31 2_34 2_35; do platforms+=(--platform "manylinux_${glibc}_x86_64"); done
    say "$python -m pip download -d $dir --only-binary=:all: --python-version $pyversion -r requirements.txt"
    "$python" -m pip download --quiet --dest "$dir" --only-binary=:all: --implementation cp \
        --python-version "$pyversion" "${platforms[@]}" --platform manylinux2014_x86_64 \
        -r "$dir/requirements.txt"
    rm "$dir/requirements.txt"
}
if [ -n "$only_wheels" ]; then
    pyversion=${PYVERSION:-3.11}
    download_wheels "$only_wheels"
    echo "$only_wheels: copy it into the build context as wheelhouse/, then" \
        "docker build --network none --build-arg WHEELHOUSE=wheelhouse ." >&2
    exit 0
fi

engine_args=()
if [ "$engine" = podman ]; then
    # podman as root on a plain host: the runc runtime, and no default ulimits (a container may
    # not raise them here). A private containers.conf, so the machine's own is left as it is.
    if [ -z "${CONTAINERS_CONF:-}" ]; then
        printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' > "$cache/containers.conf"
        export CONTAINERS_CONF=$cache/containers.conf
    fi
    engine_args=(--runtime runc)
fi

# -- the base image ----------------------------------------------------------------------------
debian_mirror() {
    local uri
    uri=$(grep -hs -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
    [ -n "$uri" ] || uri=$(grep -hs -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
        awk '{for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' | grep -v security | head -n1 || true)
    echo "${MIRROR:-$uri}"
}
if ! $engine image exists "$base" 2>/dev/null && ! $engine image inspect "$base" >/dev/null 2>&1; then
    if [ "$base" != localhost/debian-python:bookworm ]; then
        say "$engine pull $base"
        $engine pull "$base"
    else
        mirror=$(debian_mirror)
        [ -n "$mirror" ] || { echo "build.sh: no Debian mirror in apt's sources; set MIRROR" >&2; exit 1; }
        rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
        say "debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm $rootfs $mirror"
        # Never delete through a mount debootstrap left behind (it mounts proc and sys inside).
        remove_rootfs() { umount -R "$rootfs/proc" "$rootfs/sys" 2>/dev/null || true; rm -rf --one-file-system "$rootfs"; }
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
            { tail -n 20 "$cache/debootstrap.log" >&2; remove_rootfs; exit 1; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        say "tar -C ROOTFS -c . | $engine import - $base"
        tar -C "$rootfs" --one-file-system -c . | $engine import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
        remove_rootfs
    fi
fi
# The Python of the image, for the wheels' tags: the base's python3, or PYVERSION for a base
# without one (the Dockerfile then installs the distribution's: 3.12 on Ubuntu 24.04).
pyversion=${PYVERSION:-$($engine run "${engine_args[@]}" --rm --network none --entrypoint python3 "$base" \
    -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)}
if [ -z "$pyversion" ]; then
    case $base in
    nvidia/cuda:*ubuntu24.04) pyversion=3.12 ;;
    *) echo "build.sh: $base has no python3: set PYVERSION to the Python its apt installs" >&2; exit 1 ;;
    esac
fi

key=$(cat "$root/pyproject.toml" "$root/Dockerfile" "$root/container/requirements.py" "$root/container/install.sh" |
    { sha256sum; echo "$pyversion $onnxruntime"; } | sha256sum | cut -c1-16)
wheelhouse=$cache/wheelhouse-$key
if [ ! -f "$wheelhouse/.complete" ]; then
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    download_wheels "$wheelhouse"
fi
touch "$wheelhouse/.complete"
# Keep the three wheelhouses used last (a CPU and a GPU one, and the one before).
ls -dt "$cache"/wheelhouse-* | tail -n +4 | while read -r old; do rm -rf "$old"; done

# -- the build context: the files the Dockerfile copies, and the wheelhouse -------------------------
context=$cache/context
rm -rf "$context"
mkdir -p "$context"
(cd "$root" && cp -a pyproject.toml README.md Dockerfile .dockerignore container facer_cli "$context/")
find "$context" -name __pycache__ -prune -exec rm -rf {} +
cp -al "$wheelhouse" "$context/wheelhouse" 2>/dev/null || cp -a "$wheelhouse" "$context/wheelhouse"
rm -f "$context/wheelhouse/.complete"

build_args=(--build-arg "BASE=$base" --build-arg "ONNXRUNTIME=$onnxruntime" --build-arg WHEELHOUSE=wheelhouse)
[ "$engine" = podman ] && build_args+=(--format docker)   # keeps HEALTHCHECK (the OCI format has none)
say "$engine build ${engine_args[*]} --network none ${build_args[*]} -t $tag $context"
$engine build "${engine_args[@]}" --network none "${build_args[@]}" -t "$tag" "$context"
rm -rf "$context"
echo "$tag"
