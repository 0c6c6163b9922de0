# The project's own environment (training, export, golden models): CPU PyTorch, Brevitas, qonnx,
# plus Verilator and Yosys for the open RTL backend.
# The FINN build image (FINN at a pinned commit, Vivado from the host) is added with the FINN
# backend (`make bitstream`); until then this image runs everything except FINN.
FROM python:3.11-slim-bookworm

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
