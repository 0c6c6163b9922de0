# bnn-flow: the front door. Each target is a thin call of a Python entry point (all have --help).
#
#   make setup                       venv + torch (CPU wheel first) + this package (editable, dev extras)
#   make test                        the test suite (DATA= for the real-data tests)
#   make demo [DATA=…] [CKPT=…] [IMAGES=64] [FPS=2000] [OUT=build/demo]
#                                    the whole flow on models/student-flagship.pt: accuracy, QONNX, IR, RTL,
#                                    Verilator on real images, Yosys; bit-exact at every stage; OUT/report.md
#   make train CONFIG=… DATA=… OUT=… [EPOCHS=…] [TEACHER=…]
#   make eval  CKPT=… DATA=… [SPLIT=val|test|all]
#   make data                        download the official CIFAR-10 python release into data/ (md5-checked)
#   make gpu-train DATA=… OUT=…      teacher + flagship student with KD on one GPU (scripts/gpu_train.sh)
#   make sweep [SWEEP=configs/sweeps/recipe-1.yaml] DATA=… [OUT=runs/sweep-NAME] [DEADLINE_S=…]
#                                    one teacher, then K student variants side by side on one GPU, to a
#                                    deadline; table in OUT/sweep.md (model.sweep)
#   make compile (CKPT=…|CONFIG=…|PEER=…) [SEED=0] OUT=…      QONNX model + integer IR into OUT
#   make verify  (CKPT=…|CONFIG=…|PEER=…) [SEED=0] [DATA=…] [IMAGES=64]
#                                    PyTorch = QONNX = IR numpy = IR onnxruntime, bit for bit (table)
#   make rtl    (CKPT=…|CONFIG=…|PEER=…) [FPS=3000|FOLDING=…] [CLOCK_MHZ=100] [FAMILY=xc7|ecp5] OUT=…
#                                    IR -> folding -> RTL for that FPGA family (pnr, bitstream, uartsim: ecp5)
#   make rtlsim (same) [IMAGES=16] [DATA=…]   Verilator: every output integer = IR golden model; cycles, FPS
#   make synth  (same)                        Yosys synth_xilinx (7-series): LUT/FF/BRAM per layer
#   make pnr    (same) [DEVICE=85k]           Yosys synth_ecp5 + nextpnr-ecp5 (PyPI wheels): Fmax at
#                                    CLOCK_MHZ, critical path, utilization (OUT/pnr.json, report)
#   make bitstream (same) BOARD=ulx3s-85f [PLL_MHZ=…]   open tools only: the accelerator behind a UART
#                                    bridge on the ULX3S, PLL at the clock P&R allows, .bit in OUT/bitstream/
#                                    (other BOARD=s: FINN + Vivado, build_flow/finn/finn.mk)
#   make uartsim (same) [IMAGES=4] [DATA=…]   the board top (UART bridge + accelerator) in Verilator, driven
#                                    bit by bit on its serial line with random gaps: labels and scores = golden
#   make board-check PORT=/dev/ttyUSB0 [OUT=…] [DATA=… HOST_SPLIT=test] [IMAGES=…]   stream images to a ULX3S loaded with
#                                    make bitstream BOARD=ulx3s-85f's .bit; accuracy, images/s, 0 mismatches
#   make plan   (CONFIG=…|CONFIGS="a.yaml b.yaml"|CKPT=…|PEER=…) [FPS=3020]   screen candidates in seconds,
#                                    no training (random weights): binary MMACs, FPS, est. LUT/FF/BRAM36, fits Pynq-Z2

SHELL      := /bin/bash
PY         := .venv/bin/python
TORCH_PIN  := torch==2.13.0
SHARED_ZIP := ../shared/datasets/cifar10-jpeg/train.zip
DATA       ?= $(if $(wildcard data/cifar-10-batches-py),data/cifar-10-batches-py,$(if $(wildcard $(SHARED_ZIP)),$(SHARED_ZIP),data/cifar-10-batches-py))
CONFIG     ?= configs/student-small.yaml
OUT        ?= runs/$(basename $(notdir $(CONFIG)))
CKPT       ?= $(OUT)/checkpoint.pt
SPLIT      ?= val
EPOCHS     ?=
TEACHER    ?=
PYTEST_ARGS ?= -n auto --durations=10
SEED       ?= 0
IMAGES     ?= 64
PEER       ?=
FPS        ?=
CLOCK_MHZ  ?= 100
FOLDING    ?=
FAMILY     ?=
HOST_SPLIT ?= test
PORT       ?=
PLL_MHZ    ?=
HW_OUT     = $(if $(filter command line,$(origin OUT)),$(OUT),build/rtl)
HW_ARGS    = $(MODEL_ARGS) --out $(HW_OUT) --clock-mhz $(CLOCK_MHZ) $(if $(FPS),--fps $(FPS)) \
             $(if $(FOLDING),--folding $(FOLDING)) $(if $(FAMILY),--family $(FAMILY))
# which model compile/verify use: CKPT= (given on the command line), CONFIG= or PEER=
MODEL_ARGS = $(if $(PEER),--peer $(PEER),$(if $(filter command line,$(origin CKPT)),--ckpt $(CKPT),--config $(CONFIG))) --seed $(SEED)

STAMP := .venv/.installed

.PHONY: help setup tools test demo train eval data gpu-train bench compile verify rtl rtlsim synth clean-runs

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

setup: $(STAMP) tools

# Verilator and Yosys from Debian's packages (the RTL backend's simulator and synthesizer)
tools:
	@command -v verilator >/dev/null && command -v yosys >/dev/null || { \
	  echo "installing verilator and yosys (apt-get)"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get install -y -q verilator yosys >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q verilator yosys >/dev/null; }; }
	@command -v verilator >/dev/null && command -v yosys >/dev/null || \
	  { echo "error: verilator and yosys are needed: apt-get install verilator yosys" >&2; exit 1; }

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	@$(PY) -m pip install -q --upgrade pip
	@# torch first: a bare requirement would pull a multi-GB CUDA build
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	@$(PY) -m pip install -q -e ".[dev,pnr]"
	@touch $@

test: setup
	BNN_DATA="$(DATA)" $(PY) -m pytest $(PYTEST_ARGS)

train: setup
	$(PY) -m model.train --config $(CONFIG) --data $(DATA) --out $(OUT) \
	  $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(TEACHER),--teacher $(TEACHER))

eval: setup
	$(PY) -m model.evaluate --ckpt $(CKPT) --data $(DATA) --split $(SPLIT)

data: setup
	$(PY) -m model.download --out data

# make demo passes only what was given; build_flow.demo resolves the rest (data, model) itself
DEMO_ARGS = $(if $(filter command line environment,$(origin DATA)),--data $(DATA)) \
  $(if $(filter command line,$(origin CKPT)),--ckpt $(CKPT)) $(if $(filter command line,$(origin OUT)),--out $(OUT)) \
  $(if $(filter command line,$(origin IMAGES)),--images $(IMAGES)) $(if $(FPS),--fps $(FPS)) \
  $(if $(FOLDING),--folding $(FOLDING)) --clock-mhz $(CLOCK_MHZ) --seed $(SEED)

demo: setup
	$(PY) -m build_flow.demo $(strip $(DEMO_ARGS))

gpu-train: setup
	DATA=$(DATA) OUT=$(if $(filter command line,$(origin OUT)),$(OUT),runs/gpu) PY=$(PY) bash scripts/gpu_train.sh

.PHONY: sweep
SWEEP_FILE = $(or $(SWEEP),configs/sweeps/recipe-1.yaml)
sweep: setup
	$(PY) -m model.sweep --sweep $(SWEEP_FILE) --data $(DATA) \
	  --out $(if $(filter command line,$(origin OUT)),$(OUT),runs/sweep-$(basename $(notdir $(SWEEP_FILE)))) \
	  $(if $(DEADLINE_S),--deadline-s $(DEADLINE_S))

compile: setup
	$(PY) -m build_flow.compile $(MODEL_ARGS) --out $(if $(filter command line,$(origin OUT)),$(OUT),build/compile)

verify: setup
	$(PY) -m build_flow.verify_model $(MODEL_ARGS) --images $(IMAGES) $(if $(filter command line,$(origin DATA)),--data $(DATA),$(if $(wildcard $(DATA)),--data $(DATA)))

rtl: setup
	$(PY) -m build_flow.rtl_flow rtl $(HW_ARGS)

rtlsim: setup
	$(PY) -m build_flow.rtl_flow rtlsim $(HW_ARGS) --images $(IMAGES) $(if $(filter command line,$(origin DATA)),--data $(DATA),$(if $(wildcard $(DATA)),--data $(DATA)))

synth: setup
	$(PY) -m build_flow.rtl_flow synth $(HW_ARGS)

.PHONY: pnr
DEVICE ?= 85k
pnr: setup
	$(PY) -m build_flow.rtl_flow pnr $(HW_ARGS) --device $(DEVICE)

# screening: CONFIGS= several configs at once, else the model as for compile (CONFIG=, CKPT=, PEER=)
# the board top in Verilator over a bit-level serial line (build_flow/board_check.py --sim)
.PHONY: uartsim board-check
uartsim: setup
	$(PY) -m build_flow.rtl_flow rtl $(HW_ARGS) $(if $(FAMILY),,--family ecp5)
	$(PY) -m build_flow.board_check --sim --build $(HW_OUT) --images $(if $(filter command line,$(origin IMAGES)),$(IMAGES),4) --seed $(SEED) \
	  $(if $(filter command line,$(origin DATA)),--data $(DATA) --split all,$(if $(wildcard $(DATA)),--data $(DATA) --split all))

board-check: setup
	@test -n "$(PORT)" || { echo "error: give PORT=… (the ULX3S's serial port, e.g. /dev/ttyUSB0)" >&2; exit 2; }
	$(PY) -m build_flow.board_check --port $(PORT) --build $(HW_OUT) --images $(if $(filter command line,$(origin IMAGES)),$(IMAGES),100) --seed $(SEED) \
	  $(if $(filter command line,$(origin DATA)),--data $(DATA) --split $(HOST_SPLIT))

.PHONY: plan
plan: setup
	$(PY) -m build_flow.rtl_flow plan $(if $(CONFIGS),$(foreach c,$(CONFIGS),--config $(c)) --seed $(SEED),$(MODEL_ARGS)) \
	  --clock-mhz $(CLOCK_MHZ) $(if $(FPS),--fps $(FPS)) $(if $(FOLDING),--folding $(FOLDING))

include build_flow/finn/finn.mk

bench: setup
	$(PY) benchmarks/train_throughput.py

clean-runs:
	rm -rf runs/demo
