#!/bin/sh
# Build steps of docker/Dockerfile, kept in one script so that tests/test_docker.py runs the very
# same commands outside Docker (in a fresh virtualenv) as `docker build` runs inside it.
#
#   steps.sh install SRC_DIR   pip install "SRC_DIR[$EXTRAS]" $REQUIREMENTS
#   steps.sh project APP_DIR   pip install -r APP_DIR/requirements.txt (if present),
#                              manage.py check, manage.py collectstatic
#
# Uses the `python` first on PATH (the image's virtualenv). Variables (Dockerfile ARG/ENV):
#   EXTRAS         extras of the package to install (default: all)
#   REQUIREMENTS   more requirement specifiers, space separated (default: none)
set -eu

step=${1:?usage: steps.sh install SRC_DIR | project APP_DIR}
dir=${2:?missing directory}

case "$step" in
install)
    # shellcheck disable=SC2086  # REQUIREMENTS is a space separated list on purpose
    python -m pip install "${dir}[${EXTRAS:-all}]" ${REQUIREMENTS:-}
    ;;
project)
    cd "$dir"
    if [ -f requirements.txt ]; then
        python -m pip install -r requirements.txt
    fi
    # Fail the build on configuration errors, then write the hashed (and, with whitenoise's
    # storage, precompressed) files to STATIC_ROOT, which `manage.py granian` serves itself.
    python manage.py check --fail-level ERROR
    python manage.py collectstatic --noinput --verbosity 1
    ;;
*)
    echo "steps.sh: unknown step $step" >&2
    exit 2
    ;;
esac
