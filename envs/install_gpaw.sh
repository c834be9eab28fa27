#!/usr/bin/env bash
# Build GPAW (serial) into the given venv, with its PAW setups (gpaw-data), offline.
# Needs libxc and FFTW headers (Debian: libxc-dev libfftw3-dev); installs them when root.
set -euo pipefail
VENV=${1:-.venv}
PY="$VENV/bin/python"
if "$PY" -c "import gpaw, gpaw_data" 2>/dev/null; then exit 0; fi
if ! dpkg -s libxc-dev libfftw3-dev libblas-dev liblapack-dev >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxc-dev libfftw3-dev libblas-dev liblapack-dev >/dev/null
  else
    echo "install libxc-dev libfftw3-dev libblas-dev liblapack-dev (sudo apt-get install ...) and rerun" >&2; exit 1
  fi
fi
cfg=$(mktemp --suffix=.py)
# A serial build: with openmpi present GPAW would pick mpicc and fail to link.
cat > "$cfg" <<'PYCFG'
mpi = False
compiler = 'gcc'
libraries = ['xc', 'blas', 'fftw3']
fftw = True
PYCFG
GPAW_CONFIG="$cfg" "$PY" -m pip install -q gpaw gpaw-data
rm -f "$cfg"
"$PY" -c "import gpaw, gpaw_data; print('gpaw', gpaw.__version__)"
