# Two images from one file (docker build --target …):
#
#   project (default, last stage): the project's own environment (training, export, golden models):
#       CPU PyTorch, Brevitas, qonnx, plus Verilator and Yosys for the open RTL backend.
#       docker build -t bnn-flow .
#   finn: FINN at a pinned commit with its pinned dependencies (as FINN's docker/Dockerfile.finn and
#       fetch-repos.sh set them up), plus this project's FINN build code; `make bitstream` runs it.
#       Vivado/Vitis are not in the image: they are mounted from the host (FINN_XILINX_PATH,
#       FINN_XILINX_VERSION, licence via XILINXD_LICENSE_FILE, Alveo platforms via PLATFORM_REPO_PATHS);
#       build_flow/finn/cli.py runs it as FINN's run-docker.sh does (build_flow/finn/README.md).
#       docker build --target finn -t bnn-flow-finn .      (make finn-image)

# ------------------------------------------------------------------ finn
FROM ubuntu:jammy-20230126 AS finn
# FINN main at v0.10.1-10 (2026-04-14): the v0.10.x line finn-examples builds with, and the commit whose
# Python steps, hw codegen and cppsim were measured to work for CNV_1W1A and this project's Bi-Real
# students (build_flow/finn/README.md). main keeps Verilator node rtlsim and AddStreams (dev replaced
# both), which the residual joins use.
ARG FINN_COMMIT=39f0c9a6b7675f62d47390fbf9a591707bcbac9b
# pinned by FINN's fetch-repos.sh at FINN_COMMIT
ARG QONNX_COMMIT=fd61cfeebbdaba351abf7e9d54cd785d7776fa4f
ARG FINN_EXP_COMMIT=0724be21111a21f0d81a072fccc1c446e053f851
ARG PYVERILATOR_COMMIT=ce0a08c20cb8c1d1e84181d6f392390f846adbd1
ARG CNPY_COMMIT=4e8810b1a8637695171ed346ce68f6984e585ef4
ARG HLSLIB_COMMIT=16e5847a5e3ef76cffe84c8fad2f010d593457d3
ARG OMX_COMMIT=0b59762f9e4c4f7e5aa535ee9bc29f292434ca7a
ARG AVNET_BDF_COMMIT=2d49cfc25766f07792c0b314489f21fe916b639b
# XilinxBoardStore on its 2022.2 branch (FINN's 8cf4bb67 is the 2020.1 branch: no boards/TUL/pynq-z2;
# FINN itself downloads TUL's pynq-z2.zip). Holds tul.com.tw:pynq-z2:part0:1.0 and xilinx.com:zcu104:part0:1.1,
# the board_parts FINN's templates.py asks for.
ARG XIL_BDF_COMMIT=20bbb1210350982586fc3e42e9a15ee531417fea
# XRT for the Vitis (Alveo, U250) flow, as FINN's Dockerfile.finn (SKIP_XRT=1: an image without it, Zynq only)
ARG XRT_DEB_VERSION=xrt_202220.2.14.354_22.04-amd64-xrt
ARG SKIP_XRT=
# torch wheels (CPU)
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV TZ=Europe/Dublin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential libc6-dev-i386 libglib2.0-0 libsm6 libxext6 libxrender-dev git wget unzip zip rsync \
      locales lsb-release python3 python-is-python3 python3-pip python3-venv python3-setuptools-scm \
      perl make autoconf g++ flex bison ccache libgoogle-perftools-dev numactl libfl2 libfl-dev zlib1g zlib1g-dev \
      ca-certificates libudev1 \
 && rm -rf /var/lib/apt/lists/*
RUN if [ -z "$SKIP_XRT" ]; then \
      wget -q -U 'Mozilla/5.0 (X11; Linux x86_64)' "https://www.xilinx.com/bin/public/openDownload?filename=$XRT_DEB_VERSION.deb" \
        -O /tmp/$XRT_DEB_VERSION.deb \
   && apt-get update && apt-get install -y /tmp/$XRT_DEB_VERSION.deb && rm -rf /tmp/$XRT_DEB_VERSION.deb /var/lib/apt/lists/*; fi
# Verilator v4.224 from source, as FINN's Dockerfile.finn (node rtlsim via pyverilator)
RUN git clone --depth 1 --branch v4.224 https://github.com/verilator/verilator /tmp/verilator \
 && cd /tmp/verilator && autoconf && ./configure && make -j"$(nproc)" && make install && rm -rf /tmp/verilator

ENV FINN_ROOT=/opt/finn
# fetch a repository at one commit (no full history)
RUN printf '#!/bin/sh\nset -e\nmkdir -p "$3" && cd "$3" && git init -q && git remote add origin "$1" && git fetch -q --depth 1 origin "$2" && git checkout -q FETCH_HEAD\n' \
      > /usr/local/bin/git-at && chmod +x /usr/local/bin/git-at
RUN git-at https://github.com/Xilinx/finn.git $FINN_COMMIT $FINN_ROOT \
 && git-at https://github.com/fastmachinelearning/qonnx.git $QONNX_COMMIT $FINN_ROOT/deps/qonnx \
 && git-at https://github.com/Xilinx/finn-experimental.git $FINN_EXP_COMMIT $FINN_ROOT/deps/finn-experimental \
 && git-at https://github.com/maltanar/pyverilator.git $PYVERILATOR_COMMIT $FINN_ROOT/deps/pyverilator \
 && git-at https://github.com/rogersce/cnpy.git $CNPY_COMMIT $FINN_ROOT/deps/cnpy \
 && git-at https://github.com/Xilinx/finn-hlslib.git $HLSLIB_COMMIT $FINN_ROOT/deps/finn-hlslib \
 && git-at https://github.com/maltanar/oh-my-xilinx.git $OMX_COMMIT $FINN_ROOT/deps/oh-my-xilinx \
 && git-at https://github.com/Avnet/bdf.git $AVNET_BDF_COMMIT $FINN_ROOT/deps/board_files/avnet \
 && git-at https://github.com/Xilinx/XilinxBoardStore.git $XIL_BDF_COMMIT /tmp/xil-bdf \
 && cp -r /tmp/xil-bdf/boards/TUL/pynq-z2 /tmp/xil-bdf/boards/Xilinx/zcu104 $FINN_ROOT/deps/board_files/ \
 && rm -rf /tmp/xil-bdf

# FINN's Python environment: the same install path as the local FINN venv (setup_local_finn.sh):
# build_flow/finn/requirements-finn.txt, CPU torch, qonnx/FINN editable --no-deps (protobuf stays at
# FINN's 5.29.6), the documented torchvision stub, and here the real pyverilator and finn-experimental (--rtlsim)
COPY build_flow/finn/install_finn_python.sh build_flow/finn/requirements-finn.txt /opt/bnn-flow/build_flow/finn/
RUN TORCH_INDEX=$TORCH_INDEX bash /opt/bnn-flow/build_flow/finn/install_finn_python.sh python3 $FINN_ROOT --rtlsim

# the Xilinx tools come from the host at run time (build_flow/finn/cli.py mounts FINN_XILINX_PATH)
ENV OHMYXILINX=$FINN_ROOT/deps/oh-my-xilinx FINN_BUILD_DIR=/tmp/finn_build VIVADO_IP_CACHE=/tmp/vivado_ip_cache \
    NUM_DEFAULT_WORKERS=4 HOME=/tmp/home_dir
COPY build_flow/finn/docker-entrypoint.sh /usr/local/bin/bnn-finn-entrypoint
WORKDIR /opt/bnn-flow
COPY build_flow ./build_flow
COPY model ./model
COPY hw ./hw
COPY verify ./verify
ENV PYTHONPATH=/opt/bnn-flow
# the image smoke test (also run in the local venv by tests/test_finn_bitstream.py when FINN_VENV is set):
# FINN's builder imports, board files of every board, the custom steps, pyverilator/verilator/XRT
RUN python -m build_flow.finn.smoke --image$( [ -n "$SKIP_XRT" ] && echo " --no-xrt")
ENTRYPOINT ["bnn-finn-entrypoint"]
CMD ["bash"]

# ------------------------------------------------------------------ project (default)
FROM python:3.11-slim-bookworm AS project

RUN apt-get update \
 && apt-get install -y --no-install-recommends make git verilator yosys g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/bnn-flow
COPY pyproject.toml README.md ./
COPY model ./model
COPY build_flow ./build_flow
COPY verify ./verify
COPY hw ./hw
# torch first, from the CPU index: a bare requirement would pull a multi-GB CUDA build
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -e ".[dev]"
COPY . .
CMD ["make", "help"]
