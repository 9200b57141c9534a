#!/bin/sh
# Install docker-model as a Docker CLI plugin: `docker model ...`.
#
#   ./install.sh [--gpu cuda|metal|cpu] [--dev]   install or update (running it twice is harmless)
#   ./install.sh --uninstall                      remove the plugin and its virtualenv, keep downloaded models
#
# Environment: DOCKER_CONFIG (default ~/.docker) decides where the plugin goes; PYTHON picks the
# interpreter; DOCKER_MODEL_VENV overrides the virtualenv's location.
set -eu

die() { echo "error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
}

source_dir=$(cd "$(dirname "$0")" && pwd)
gpu=""
dev=0
uninstall=0
while [ $# -gt 0 ]; do
    case "$1" in
        --gpu) [ $# -ge 2 ] || die "--gpu needs a value: cuda, metal or cpu"; gpu=$2; shift 2 ;;
        --gpu=*) gpu=${1#--gpu=}; shift ;;
        --dev) dev=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1'; run ./install.sh --help for the options" ;;
    esac
done
case "$gpu" in
    ""|cuda|metal|cpu) ;;
    *) die "--gpu must be cuda, metal or cpu, not '$gpu'" ;;
esac

# The per-user data directory, as platformdirs names it, so the runner finds its models beside it.
if [ "$(uname -s)" = Darwin ]; then
    data_dir="$HOME/Library/Application Support/docker-model"
else
    data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/docker-model"
fi
venv=${DOCKER_MODEL_VENV:-$data_dir/venv}
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
plugin="$plugin_dir/docker-model"
marker="# installed by docker-model install.sh"

if [ "$uninstall" = 1 ]; then
    if [ -x "$venv/bin/docker-model" ]; then
        "$venv/bin/docker-model" stop-runner >/dev/null 2>&1 || true
    fi
    if [ -f "$plugin" ] && grep -q "$marker" "$plugin"; then
        rm -f "$plugin"
        say "Removed the plugin $plugin"
    fi
    if [ -d "$venv" ]; then
        rm -rf "$venv"
        say "Removed the virtualenv $venv"
    fi
    say "Downloaded models are kept (in $data_dir/models unless MODELS_PATH says otherwise)"
    exit 0
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 ||
    die "no Python found ('$python'); install Python 3.10 or newer, or set PYTHON=/path/to/python3"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "Python 3.10 or newer is needed, found $("$python" -V 2>&1) at $(command -v "$python"); install a newer one or set PYTHON=/path/to/python3"
"$python" -c 'import venv, ensurepip' 2>/dev/null ||
    die "Python's venv module is missing; install it (Debian/Ubuntu: apt-get install python3-venv)"

# Which llama.cpp build suits this machine.
if [ -z "$gpu" ]; then
    if [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ]; then
        gpu=metal; why="Apple Silicon"
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 &&
        { command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; }; then
        gpu=cuda; why="NVIDIA GPU and CUDA toolkit found"
    else
        gpu=cpu; why="no supported GPU found"
    fi
else
    why="chosen with --gpu"
fi
case "$gpu" in
    cuda) cmake_args="-DGGML_CUDA=on"; PATH="$PATH:/usr/local/cuda/bin" ;;
    metal) cmake_args="-DGGML_METAL=on" ;;
    cpu) cmake_args="" ;;
esac
# Every build has llama.cpp's RPC backend: `docker model rpc-server` and pools of machines need it.
cmake_args="$cmake_args -DGGML_RPC=on"
say "llama.cpp backend: $gpu ($why)"

backend_file="$venv/.docker-model-backend"
engine_has_rpc() { ls "$venv"/lib/python*/site-packages/llama_cpp/lib/libggml-rpc.* >/dev/null 2>&1; }
installed_backend=$(cat "$backend_file" 2>/dev/null || true)
need_engine_build=1
engine_installed=0
if "$venv/bin/python" -c 'import llama_cpp' >/dev/null 2>&1; then
    engine_installed=1
    # An engine built elsewhere (no record of its backend) is kept unless --gpu asks for a given one;
    # an engine without the RPC backend (built before it was included) is rebuilt.
    if [ "$installed_backend" = "$gpu" ] || { [ -z "$installed_backend" ] && [ "$why" != "chosen with --gpu" ]; }; then
        engine_has_rpc && need_engine_build=0
    fi
fi
if [ "$need_engine_build" = 1 ]; then
    command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || command -v clang >/dev/null 2>&1 ||
        die "no C compiler found, needed to build llama.cpp; install one (Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install)"
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1 ||
        die "no C++ compiler found, needed to build llama.cpp; install one (Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install)"
    command -v cmake >/dev/null 2>&1 ||
        die "cmake not found, needed to build llama.cpp; install it (Debian/Ubuntu: apt-get install cmake; macOS: brew install cmake)"
fi

if [ ! -x "$venv/bin/python" ]; then
    say "Creating the virtualenv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi

pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@"; }
if [ "$need_engine_build" = 1 ]; then
    say "Building llama-cpp-python for $gpu (several minutes the first time)"
    reinstall=""
    [ "$engine_installed" = 1 ] && reinstall="--force-reinstall --no-deps --no-cache-dir"
    # shellcheck disable=SC2086 # $reinstall is a list of options
    CMAKE_ARGS="$cmake_args" pip install $reinstall "llama-cpp-python>=0.3.36,<0.4"
    if ! engine_has_rpc; then  # pip reused a wheel it had built earlier without the RPC backend
        say "Building llama-cpp-python again: the wheel pip had kept lacks the RPC backend"
        CMAKE_ARGS="$cmake_args" pip install --force-reinstall --no-deps --no-cache-dir "llama-cpp-python>=0.3.36,<0.4"
    fi
    echo "$gpu" >"$backend_file"
fi

say "Installing docker-model into $venv"
if [ "$dev" = 1 ]; then
    pip install --quiet -e "$source_dir[test]"
else
    pip install --quiet "$source_dir"
fi

# The docker CLI asks a plugin for its metadata before every run: answer from the shell, without Python.
metadata=$("$venv/bin/docker-model" docker-cli-plugin-metadata)
mkdir -p "$plugin_dir"
tmp="$plugin.tmp.$$"
cat >"$tmp" <<EOF
#!/bin/sh
$marker
if [ "\$1" = docker-cli-plugin-metadata ]; then
    cat <<'METADATA'
$metadata
METADATA
    exit 0
fi
exec "$venv/bin/docker-model" "\$@"
EOF
chmod 755 "$tmp"
mv -f "$tmp" "$plugin"
say "Installed the plugin $plugin"

if command -v docker >/dev/null 2>&1; then
    say "Done: try 'docker model --help'"
else
    echo "warning: no docker CLI found; the plugin still works as '$plugin', and as 'docker model' once the docker CLI is installed" >&2
fi
