# FINN backend (build_flow/finn/): included by the top-level Makefile.
#
#   make finn-estimate (CKPT=…|CONFIG=…|PEER=…) [BOARD=Pynq-Z2] [FINN_VENV=…] [FPS=…|FOLDING=…] [IMAGES=8] OUT=…
#        FINN's Python steps, hw codegen and cppsim (in a local FINN venv, or else the docker image);
#        cppsim outputs compared with the golden model (array_equal); FINN's and the planner's estimates
#   make bitstream (CKPT=…|CONFIG=…|PEER=…) BOARD=ulx3s-85f [FPS=…|FOLDING=…] [PLL_MHZ=…] [OUT=…]
#        open tools only (hw/bitstream.py): the accelerator behind a UART bridge in the ULX3S's top,
#        the PLL at the clock P&R allows, Yosys -> nextpnr-ecp5 -> ecppack: OUT/bitstream/ulx3s-85f.bit
#        (OUT defaults to build/rtl); then make board-check PORT=/dev/ttyUSB0 [OUT=…] [DATA=…]
#   make bitstream (CKPT=…|CONFIG=…|PEER=…) [BOARD=Pynq-Z2|ZCU104|U250] [OUT=…]
#        the full FINN build in the docker image with Vivado and Vitis HLS from the host (FINN_XILINX_PATH,
#        FINN_XILINX_VERSION, XILINXD_LICENSE_FILE; PLATFORM_REPO_PATHS for Alveo): cppsim and stitched-IP
#        rtlsim checked against the golden model (the build stops at the first mismatch), timing and fit
#        from Vivado's reports; results in OUT/bitstream/, the board's package in OUT/deploy/,
#        FINN's HLS/Vivado projects and logs in OUT/finn_build/ (OUT defaults to build/finn/<board>)
#   make deploy [BOARD=…] PYNQ_IP=… [PYNQ_USER=xilinx] [PYNQ_DIR=bnn-deploy] [OUT=…]
#        copy OUT/deploy to the board over ssh; then on the board: cd PYNQ_DIR && sudo python3 run_on_board.py
#   make finn-image                  the docker image (top-level Dockerfile, target finn)
#   make finn-venv FINN_VENV=DIR     a local FINN venv (build_flow/finn/setup_local_finn.sh)

BOARD       ?= Pynq-Z2
FINN_VENV   ?=
FINN_IMAGE  ?= bnn-flow-finn
FINN_IMAGES ?= 8
FINN_OUT     = $(if $(filter command line,$(origin OUT)),$(OUT),build/finn/$(BOARD))
FINN_ARGS    = $(MODEL_ARGS) --out $(FINN_OUT) --board $(BOARD) --images $(FINN_IMAGES) \
               $(if $(FPS),--fps $(FPS)) $(if $(FOLDING),--folding $(FOLDING)) \
               $(if $(filter command line,$(origin DATA)),--data $(DATA),$(if $(wildcard $(DATA)),--data $(DATA)))

PYNQ_USER   ?= xilinx
PYNQ_DIR    ?= bnn-deploy

.PHONY: finn-estimate bitstream finn-image finn-venv deploy

finn-estimate: setup
	$(PY) -m build_flow.finn.cli estimate $(FINN_ARGS) $(if $(FINN_VENV),--finn-venv $(FINN_VENV)) --image $(FINN_IMAGE)

# BOARD=ulx3s-85f: the open-tool path (hw/bitstream.py: Yosys, nextpnr-ecp5, ecppack; no docker, no
# vendor tool). Other boards: FINN in docker with Vivado; preflight first (docker, daemon, Vivado,
# board, checkpoint, folding): one line and exit 2 before any long work
bitstream: setup
ifneq ($(filter ulx3s-%,$(BOARD)),)
	$(PY) -m build_flow.rtl_flow bitstream $(HW_ARGS) --board $(BOARD) $(if $(PLL_MHZ),--pll-mhz $(PLL_MHZ))
else
	$(PY) -c "import sys; from model.errors import run_cli; from build_flow.finn.cli import _args, run_preflight; \
	run_cli(lambda a: run_preflight(_args(a)) and 0, sys.argv[1:])" bitstream $(FINN_ARGS)
	@docker image inspect $(FINN_IMAGE) >/dev/null 2>&1 || $(MAKE) --no-print-directory finn-image
	$(PY) -m build_flow.finn.cli bitstream $(FINN_ARGS) --image $(FINN_IMAGE) --verify cppsim,rtlsim
endif

# the deploy package of `make bitstream` (OUT/deploy) -> the board, over ssh (replaces PYNQ_DIR there)
deploy:
	@test -n "$(PYNQ_IP)" || { echo "error: give PYNQ_IP=… (the board's address)" >&2; exit 2; }
	@test -f "$(FINN_OUT)/deploy/run_on_board.py" || { echo "error: $(FINN_OUT)/deploy: no deploy package (run make bitstream BOARD=$(BOARD) first, or give its OUT=)" >&2; exit 2; }
	tar -C "$(FINN_OUT)/deploy" -cf - . | ssh "$(PYNQ_USER)@$(PYNQ_IP)" 'rm -rf "$(PYNQ_DIR)" && mkdir -p "$(PYNQ_DIR)" && tar -C "$(PYNQ_DIR)" -xf -'
	@echo "on the board: ssh $(PYNQ_USER)@$(PYNQ_IP), then: cd $(PYNQ_DIR) && sudo python3 run_on_board.py"

finn-image:
	docker build --target finn -t $(FINN_IMAGE) .

finn-venv:
	@test -n "$(FINN_VENV)" || { echo "error: give FINN_VENV=DIR (outside this repository)" >&2; exit 2; }
	bash build_flow/finn/setup_local_finn.sh $(FINN_VENV)
