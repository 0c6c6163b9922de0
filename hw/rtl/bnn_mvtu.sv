// bnn_mvtu: matrix-vector-threshold unit (IR op MatrixVector), the streaming core of every
// convolution and fully connected layer, in the style of FINN's MVAU.
//
// For every input vector x (MW elements) it computes, per output channel r (MH of them),
//   acc_r = sum_c w[r][c] * x[c]           w = +-1; XNOR-popcount 2*pop(xnor) - n for BIPOLAR x,
//                                           +x / -x for integer x (signed or unsigned)
// and outputs either the accumulators (N_THRES = 0) or y_r = Y_MIN + #{k : T_rk <= acc_r}
// (direction +1) / #{k : T_rk >= acc_r} (direction -1). BIPOLAR output (OUT_BIPOLAR,
// N_THRES = 1, Y_MIN = 0): the count 0/1 is the bit 0/1 = -1/+1. Two activation circuits:
//   THRES_SEARCH = 0: one comparator per threshold and a popcount (rows need not be sorted);
//   THRES_SEARCH = 1: a pipelined binary search over each row sorted ascending (N_THRES + 1 must
//     be a power of two, N_THRES = 2^S - 1): S levels, level j compares acc with one threshold
//     picked by the j count bits found so far (MSB first) and yields the next bit; one comparator
//     per level instead of N_THRES. Direction +1 finds c = #{k : T_k <= acc} (bit set when the
//     threshold <= acc), direction -1 finds c' = #{k : T_k < acc} and outputs N_THRES - c' = ~c'.
//
// Parameters
//   MW, MH          matrix columns (vector length) / rows (output channels)
//   SIMD, PE        input elements per beat (divides MW) / output channels per beat (divides MH)
//   IN_EW           bits per input element (1 for BIPOLAR)
//   IN_SIGNED       1: inputs are two's complement, 0: unsigned (ignored for BIPOLAR)
//   IN_BIPOLAR      1: inputs are BIPOLAR bits (1 = +1, 0 = -1), products are XNORs
//   ACC_W           signed accumulator width; must hold +-MW*max|x| (hw/mvtu_mem.py: acc_width)
//   WEIGHT_FILE     $readmemh file of the weight memory (below)
//   N_THRES         thresholds per channel L; 0 = no activation
//   T_W             signed threshold width (hw/mvtu_mem.py: threshold_width)
//   THRES_FILE      $readmemh file of the threshold memory (unused when N_THRES = 0)
//   DIR_FILE        $readmemh file of the direction memory (unused when N_THRES = 0)
//   THRES_SEARCH    0: parallel comparators (THRES_FILE is the threshold memory), 1: binary
//                   search (THRES_FILE is the prefix of the per-level files THRES_FILE + "<j>.mem",
//                   j = 0 .. S-1 a decimal digit, so S <= 10); N_THRES = 1 always uses comparators
//   OUT_EW          bits per output element. N_THRES = 0: the accumulator, sign-extended or
//                   truncated to OUT_EW bits (OUT_EW = ACC_W passes it unchanged)
//   OUT_BIPOLAR     1: output bit = count (0/1), Y_MIN is not used
//   Y_MIN           signed integer added to the count (the output datatype's minimum)
//   WEIGHT_BRAM     weight ROM style: 1 block RAM, 0 distributed (LUTs), -1 (default) block RAM
//                   when NF*SF >= 128 and NF*SF*PE*SIMD >= 16384 bits, else the tool's choice
//   MEM_REG         1: one more register behind the weight memory and the input buffer (the block
//                   RAM's output register: its clock-to-out no longer starts the adder tree's path);
//                   2: two (with WBANK, the first of them sits behind each bank, before the bank mux)
//   WBANK           0: one weight memory; else words per weight bank (a power of two < NF*SF, with
//                   MEM_REG = 2): the memory is split in depth into NB = ceil(NF*SF/WBANK) banks, each
//                   read into its own register, so that no block RAM's clock-to-out and route across
//                   the stacked RAMs meet the bank mux in one cycle; WEIGHT_FILE is then the prefix of
//                   the bank files WEIGHT_FILE + "<b>.mem", b = 000 .. NB-1 in three decimal digits
//   WSLICE          1: every bank (or the one memory, WBANK = 0) is split in width into slices of
//                   the widest block-RAM port one RAM deep holds (1 bit up to 16,384 words, 2 up to
//                   8,192, 4 up to 4,096, 9 up to 2,048, 18 up to 1,024, else 36; hw/bram.py), one
//                   memory per slice, so that no read crosses RAMs stacked in depth; WEIGHT_FILE is
//                   then the prefix of the slice files WEIGHT_FILE + "<b>_<k>.mem" (bank b, slice k,
//                   each three decimal digits; slice k holds bits [k*SW +: SW], the last one the rest)
//   TREE_LEVELS     adder-tree levels per cycle: 0 = the whole tree of SIMD terms in one cycle;
//                   k >= 1 registers the tree after every k levels (counted from the leaves, below
//                   the root), TREE_REGS = (clog2(SIMD) - 1) / k extra registers. hw/planner.py picks
//                   MEM_REG and TREE_LEVELS from SIMD and the clock (`mvtu_pipeline`)
//
// Streams (AXI-Stream, no tlast)
//   s_axis: SIMD elements of IN_EW bits per beat, element s at bits [s*IN_EW +: IN_EW];
//           a vector is SF = MW/SIMD beats, beat sf carrying columns sf*SIMD .. sf*SIMD+SIMD-1.
//   m_axis: PE elements of OUT_EW bits per beat; a vector gives NF = MH/PE beats, beat nf
//           carrying channels nf*PE .. nf*PE+PE-1 (element p = channel nf*PE+p).
//
// Memories: text files of one hexadecimal word per line (no address markers), line i = word at
// address i, MSB first, ceil(width/4) digits (hw/mvtu_mem.py writes them):
//   weights     depth NF*SF, width PE*SIMD; word nf*SF+sf, bit p*SIMD+s = weight of row
//               nf*PE+p, column sf*SIMD+s (1 = +1, 0 = -1); with WBANK, bank file b holds words
//               b*WBANK .. b*WBANK+WBANK-1 (the last one the rest)
//   thresholds  depth NF, width PE*N_THRES*T_W; word nf, element p*N_THRES+k (bits
//               [(p*N_THRES+k)*T_W +: T_W], two's complement) = threshold k of channel nf*PE+p
//   directions  depth NF, width PE; word nf, bit p = 1 when channel nf*PE+p has direction -1
//   search level j (THRES_SEARCH = 1; each row sorted ascending, T_0 <= .. <= T_{N_THRES-1}):
//               level 0: depth NF, width PE*T_W; word nf, element p = T_{2^(S-1)-1} (the median);
//               level j >= 1: depth NF*2^(j-1), width PE*2*T_W; word nf*2^(j-1)+P, element p*2+h
//               = T_{(2Q+1)*2^(S-1-j)-1} with Q = 2P+h, where P (j-1 bits) and h are the count
//               bits found at levels 0..j-1 of channel nf*PE+p (both children are read one level
//               early; the bit found at level j-1 selects one of them)
//
// Schedule: neuron fold 0 consumes the input beats and stores them in an SF-deep buffer;
// folds 1..NF-1 re-read the buffer, so the input is not accepted then (s_axis_tready = 0).
// One PE x SIMD step per cycle: a vector takes NF*SF cycles when nothing stalls. A missing
// input beat in fold 0 leaves a bubble; a full output (register + skid) holds every pipeline
// register until it drains.
// Pipeline: step issue (input/buffer/weight registers) [-> MEM_REG operand registers] -> partial
// sums (adder tree of SIMD terms, TREE_REGS registers inside, registered; the fold's threshold and
// direction memories read meanwhile) -> accumulators (the thresholds copied into a register beside
// them) -> thresholds (one adder per threshold, a popcount tree, + Y_MIN) -> m_axis register,
// beside a one-beat skid register. Latency: a fold whose last step is issued at cycle c is valid
// on m_axis from cycle c+4+P, P = MEM_REG + TREE_REGS; with THRES_SEARCH = 1 the accumulators pass
// 2S-3 more registered stages (one comparator per PE per level; levels >= 2 wait a stage for their
// ROM's registered read), valid from cycle c+1+2S+P (L = 15: c+9+P, L = 63: c+13+P). Throughput
// is the same in both modes. s_axis_tready, m_axis_tvalid and m_axis_tdata come from registers only (no
// combinational path from m_axis_tready to s_axis_tready).
module bnn_mvtu #(
    parameter int MW = 8,
    parameter int MH = 4,
    parameter int SIMD = 2,
    parameter int PE = 2,
    parameter int IN_EW = 1,
    parameter int IN_SIGNED = 0,
    parameter int IN_BIPOLAR = 1,
    parameter int ACC_W = 8,
    parameter WEIGHT_FILE = "",
    parameter int N_THRES = 1,
    parameter int T_W = 8,
    parameter THRES_FILE = "",
    parameter DIR_FILE = "",
    parameter int THRES_SEARCH = 0,
    parameter int OUT_EW = 1,
    parameter int OUT_BIPOLAR = 1,
    parameter int Y_MIN = 0,
    parameter int WEIGHT_BRAM = -1,
    parameter int MEM_REG = 0,
    parameter int WBANK = 0,
    parameter int WSLICE = 0,
    parameter int TREE_LEVELS = 0
) (
    input  logic                    clk,
    input  logic                    rst,
    input  logic [SIMD*IN_EW-1:0]   s_axis_tdata,
    input  logic                    s_axis_tvalid,
    output logic                    s_axis_tready,
    output logic [PE*OUT_EW-1:0]    m_axis_tdata,
    output logic                    m_axis_tvalid,
    input  logic                    m_axis_tready
);
    localparam int SF = MW / SIMD;                       // synapse fold: beats per vector
    localparam int NF = MH / PE;                         // neuron fold: output beats per vector
    localparam int SFW = SF > 1 ? $clog2(SF) : 1;
    localparam int NFW = NF > 1 ? $clog2(NF) : 1;
    localparam int WD = NF * SF;                         // weight memory depth
    localparam int WAW = WD > 1 ? $clog2(WD) : 1;
    localparam int IW = SIMD * IN_EW;                    // input beat width
    localparam int WW = PE * SIMD;                       // weight word width
    localparam int S2 = 1 << $clog2(SIMD);               // adder-tree leaves (power of two)
    localparam int PW = $clog2(SIMD + 1) + IN_EW + 2;    // partial-sum width (holds +-SIMD*2^IN_EW)
    localparam int LV = $clog2(S2);                      // adder levels of the tree
    localparam int TREE_REGS = (TREE_LEVELS <= 0 || LV <= 1) ? 0 : (LV - 1) / TREE_LEVELS;
    localparam int DL = MEM_REG + TREE_REGS;             // extra pipeline registers before psum2
    localparam int CW = NFW + 3;                         // control word: valid, first, last, nf
    localparam logic [SFW-1:0] SF_LAST = SFW'(SF - 1);
    localparam logic [NFW-1:0] NF_LAST = NFW'(NF - 1);
    localparam logic [WAW-1:0] WA_LAST = WAW'(WD - 1);
    localparam int NB = (WBANK > 0 && WBANK < WD) ? (WD + WBANK - 1) / WBANK : 1;   // weight banks
    localparam int BAW = WBANK > 1 ? $clog2(WBANK) : 1;  // address bits inside a bank
    localparam int NBW = NB > 1 ? $clog2(NB) : 1;

    // a tree node of height h (additions below it) is registered when this is 1
    function automatic integer tree_reg(input integer h);
        tree_reg = (TREE_LEVELS > 0 && h >= 1 && h < LV && (h % TREE_LEVELS) == 0) ? 1 : 0;
    endfunction
    // bits of the widest port of one 18-kbit block RAM that holds `depth` words (hw/bram.py)
    function automatic integer slice_width(input integer depth);
        slice_width = depth <= 512 ? 36 : depth <= 1024 ? 18 : depth <= 2048 ? 9 : depth <= 4096 ? 4 :
                      depth <= 8192 ? 2 : 1;
    endfunction
    // slices of the first (deepest) bank, the most of any bank
    localparam int SW0 = slice_width(NB > 1 ? WBANK : WD) < WW ? slice_width(NB > 1 ? WBANK : WD) : WW;
    localparam int NS0 = (WW + SW0 - 1) / SW0;
    function automatic integer node_depth(input integer n);   // floor(log2(n)), n >= 1
        integer k;
        node_depth = 0;
        for (k = n; k > 1; k = k / 2) node_depth = node_depth + 1;
    endfunction

    generate
        if (MEM_REG < 0 || MEM_REG > 2) begin : g_bad_memreg
            $error("bnn_mvtu: need MEM_REG 0, 1 or 2 (MEM_REG=%0d)", MEM_REG);
        end
        if (WBANK < 0 || (WBANK > 0 && (WBANK & (WBANK - 1)) != 0) || NB > 1000
            || (NB > 1 && MEM_REG != (WEIGHT_BRAM == 0 ? 1 : 2))) begin : g_bad_wbank
            $error("bnn_mvtu: need WBANK 0 or a power of two, at most 1000 banks, MEM_REG = 2 with block-RAM banks, 1 with banks in logic (WBANK=%0d MEM_REG=%0d WEIGHT_BRAM=%0d NF*SF=%0d)",
                   WBANK, MEM_REG, WEIGHT_BRAM, WD);
        end
        if (WSLICE != 0 && (WSLICE != 1 || WEIGHT_BRAM == 0 || NS0 > 1000)) begin : g_bad_wslice
            $error("bnn_mvtu: need WSLICE 0 or 1, a block-RAM weight memory to slice and at most 1000 slices (WSLICE=%0d WEIGHT_BRAM=%0d slices=%0d)",
                   WSLICE, WEIGHT_BRAM, NS0);
        end
        if (TREE_LEVELS < 0) begin : g_bad_levels
            $error("bnn_mvtu: need TREE_LEVELS >= 0 (TREE_LEVELS=%0d)", TREE_LEVELS);
        end
        if (MW % SIMD != 0 || MH % PE != 0) begin : g_bad_fold
            $error("bnn_mvtu: need SIMD dividing MW and PE dividing MH (MW=%0d SIMD=%0d MH=%0d PE=%0d)", MW, SIMD, MH, PE);
        end
    endgenerate

    // ------------------------------------------------------------------ control
    logic             adv;          // the whole pipeline moves this cycle
    logic             step;         // a PE x SIMD step is issued this cycle
    logic             nf0;          // the current step belongs to neuron fold 0 (reads s_axis)
    logic [SFW-1:0]   sf;
    logic [NFW-1:0]   nf;
    logic [WAW-1:0]   waddr;
    logic             skid_valid;

    assign adv = !skid_valid;
    assign nf0 = (nf == '0);
    assign s_axis_tready = adv && nf0;
    assign step = adv && (!nf0 || s_axis_tvalid);

    always_ff @(posedge clk) begin
        if (rst) begin
            sf <= '0;
            nf <= '0;
            waddr <= '0;
        end else if (step) begin
            if (sf == SF_LAST) begin
                sf <= '0;
                nf <= (nf == NF_LAST) ? '0 : nf + 1'b1;
            end else begin
                sf <= sf + 1'b1;
            end
            waddr <= (waddr == WA_LAST) ? '0 : waddr + 1'b1;
        end
    end

    // ------------------------------------------------------------------ stage 1: operands
    logic             v1, first1, last1, usebuf1;
    logic [NFW-1:0]   nf1;
    logic [IW-1:0]    xin1, xbuf1, x1;

    localparam int WSTYLE = WEIGHT_BRAM >= 0 ? WEIGHT_BRAM : (WD >= 128 && WD * WW >= 16384 ? 1 : -1);
    logic [NB*WW-1:0] wb1;          // every bank's read data (one memory: its read register)
    /* verilator lint_off UNUSEDSIGNAL */  // read by the MEM_REG = 2 registers only
    logic [NBW-1:0]   bsel1;        // the bank the step reads
    /* verilator lint_on UNUSEDSIGNAL */
    // the weight reads are enabled by `adv` (a register's inverse), not by `step`: a read in a bubble
    // (adv without step) is harmless, its v1 is 0, and the issue logic stays off the enable of every
    // weight RAM (CNV_1W1A's critical path after the slices: nf -> step -> the RAMs' CE, 10.66 ns)
    generate
        if (NB > 1000 || (WSLICE == 1 && NS0 > 1000)) begin : g_wnone   // refused above: build nothing
            assign wb1 = '0;
            assign bsel1 = '0;
        end else if (NB > 1 || WSLICE == 1) begin : g_wbanks
            for (genvar b = 0; b < NB; b = b + 1) begin : g_bank
                localparam int D = (b == NB - 1) ? WD - b * WBANK : WBANK;   // the last one: the rest
                localparam int DAW = D > 1 ? $clog2(D) : 1;   // its offsets < D: the upper bits are 0
                localparam int SW = WSLICE == 1 ? (slice_width(D) < WW ? slice_width(D) : WW) : WW;
                localparam int NS = (WW + SW - 1) / SW;
                for (genvar k = 0; k < NS; k = k + 1) begin : g_slice
                    localparam int KW = (k == NS - 1) ? WW - k * SW : SW;
                    // bank b's file <WEIGHT_FILE><b:03d>.mem, or slice k's of it <...>_<k:03d>.mem
                    localparam BANK_FILE = {WEIGHT_FILE, 8'(48 + b / 100), 8'(48 + (b / 10) % 10), 8'(48 + b % 10)};
                    if (WEIGHT_BRAM == 0) begin : g_logic
                        // a bank in logic (WBANK = the words one LUT of the part reads, unsliced),
                        // synthesized apart (bnn_rom): each bit one LUT of the bank's address
                        bnn_rom #(.W(KW), .DEPTH(D), .AW(DAW), .FILE({BANK_FILE, ".mem"})) u_rom (
                            .clk(clk), .en(adv), .addr(waddr[DAW-1:0]), .q(wb1[b*WW + k*SW +: KW]));
                    end else begin : g_block
                        (* rom_style = "block" *) logic [KW-1:0] bmem [0:D-1];
                        if (WSLICE == 1) begin : g_file
                            initial if (WEIGHT_FILE != "")
                                $readmemh({BANK_FILE, "_", 8'(48 + k / 100), 8'(48 + (k / 10) % 10), 8'(48 + k % 10),
                                           ".mem"}, bmem);
                        end else begin : g_file
                            initial if (WEIGHT_FILE != "") $readmemh({BANK_FILE, ".mem"}, bmem);
                        end
                        always_ff @(posedge clk) if (adv) wb1[b*WW + k*SW +: KW] <= bmem[waddr[DAW-1:0]];
                    end
                end
            end
            if (NB > 1) begin : g_bsel
                always_ff @(posedge clk) if (adv) bsel1 <= waddr[WAW-1:BAW];
            end else begin : g_bsel
                assign bsel1 = '0;
            end
        end else begin : g_wmem
            logic [WW-1:0] w1;
            assign bsel1 = '0;
            assign wb1 = w1;
            if (WSTYLE == 1) begin : g_wrom
                (* rom_style = "block" *) logic [WW-1:0] wmem [0:WD-1];
                initial if (WEIGHT_FILE != "") $readmemh(WEIGHT_FILE, wmem);
                always_ff @(posedge clk) if (adv) w1 <= wmem[waddr];
            end else if (WSTYLE == 0) begin : g_wrom
                (* rom_style = "distributed" *) logic [WW-1:0] wmem [0:WD-1];
                initial if (WEIGHT_FILE != "") $readmemh(WEIGHT_FILE, wmem);
                always_ff @(posedge clk) if (adv) w1 <= wmem[waddr];
            end else begin : g_wrom
                logic [WW-1:0] wmem [0:WD-1];
                initial if (WEIGHT_FILE != "") $readmemh(WEIGHT_FILE, wmem);
                always_ff @(posedge clk) if (adv) w1 <= wmem[waddr];
            end
        end
    endgenerate

    always_ff @(posedge clk) begin
        if (step && nf0) xin1 <= s_axis_tdata;
        if (adv) begin
            first1 <= (sf == '0);
            last1 <= (sf == SF_LAST);
            nf1 <= nf;
            usebuf1 <= !nf0;
        end
    end

    always_ff @(posedge clk) begin
        if (rst) v1 <= 1'b0;
        else if (adv) v1 <= step;
    end

    generate
        if (NF > 1) begin : g_buf
            // in distributed RAM, as the planner costs it: Yosys put CNV_1W1A's 36 x 32-bit buffers
            // in ECP5 block RAMs, whose 5.6 ns clock-to-out and route into the buffer select were the
            // board top's critical path (10.15 ns, Conv_3)
            (* ram_style = "distributed" *) logic [IW-1:0] ibuf [0:SF-1];
            always_ff @(posedge clk) begin
                if (step && nf0) ibuf[sf] <= s_axis_tdata;
                if (step && !nf0) xbuf1 <= ibuf[sf];
            end
        end else begin : g_nobuf
            assign xbuf1 = xin1;
        end
    endgenerate
    assign x1 = usebuf1 ? xbuf1 : xin1;

    // ------------------------------------------------------------------ operand register, tree delay
    // the control word of a step travels beside its operands through the DL extra registers
    logic [IW-1:0]    xp;           // the operands entering the adder tree
    logic [WW-1:0]    wp;
    logic [CW-1:0]    c1, cp;
    assign c1 = {v1, first1, last1, nf1};
    generate
        if (MEM_REG != 0) begin : g_memreg
            // MEM_REG 2: a first register behind every bank's read data (next to its RAM), the bank
            // mux after it; then the operand register
            logic [IW-1:0]    xq, xr;
            logic [NB*WW-1:0] wq;
            logic [NBW-1:0]   bq;
            logic [WW-1:0]    wr;
            if (MEM_REG == 2) begin : g_bankreg
                always_ff @(posedge clk) begin
                    if (adv) begin
                        xq <= x1;
                        wq <= wb1;
                        bq <= bsel1;
                    end
                end
            end else begin : g_nobankreg
                assign xq = x1;
                assign wq = wb1;
                assign bq = bsel1;
            end
            always_ff @(posedge clk) begin
                if (adv) begin
                    xr <= xq;
                    wr <= wq[bq*WW +: WW];
                end
            end
            assign xp = xr;
            assign wp = wr;
        end else begin : g_nomemreg
            assign xp = x1;
            assign wp = wb1;
        end
        if (DL > 0) begin : g_delay
            logic [DL*CW-1:0] chain;    // chain[i*CW +: CW]: the step i+1 cycles behind stage 1
            always_ff @(posedge clk) begin
                if (rst) chain <= '0;
                else if (adv) chain <= (DL*CW)'({chain, c1});
            end
            assign cp = chain[(DL-1)*CW +: CW];
        end else begin : g_nodelay
            assign cp = c1;
        end
    endgenerate

    // ------------------------------------------------------------------ stage 2: partial sums
    logic             v2, first2, last2;
    logic [PE*ACC_W-1:0] psum2;

    always_ff @(posedge clk) begin
        if (rst) v2 <= 1'b0;
        else if (adv) v2 <= cp[CW-1];
        if (adv) begin
            first2 <= cp[CW-2];
            last2 <= cp[CW-3];
        end
    end

    // How the registered tree nodes are held (the same registers either way). Synthesis: one
    // register over the vector of all nodes, of which it keeps the registered heights' bits;
    // every adder then has a second reader when Yosys groups additions, so each stays its own
    // carry chain (merging two levels into one multi-operand adder maps 12-17 % larger on ECP5).
    // Simulation (Verilator) : one register per registered node, since it would evaluate the
    // vector gathered from 2*S2 slices as a chain of multi-thousand-bit temporaries every cycle.
    // +define+BNN_MVTU_PACKED_TREE simulates the synthesis form (tests/test_rtl_mvtu.py does).
`ifdef VERILATOR
`ifndef BNN_MVTU_PACKED_TREE
    localparam bit NODE_REGS = 1'b1;
`else
    localparam bit NODE_REGS = 1'b0;
`endif
`else
    localparam bit NODE_REGS = 1'b0;
`endif

    genvar p, n;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            // heap-ordered adder tree: node n = node 2n + node 2n+1, leaves at S2 .. 2*S2-1, one
            // generate block per node, built from the leaves up (every child exists before its
            // parent): Verilator evaluates each node as one machine word, where a loop over
            // slices of one wide vector cost a masked multi-word write per node and cycle. A node
            // of height h with tree_reg(h) reaches its parent through a register (its value one
            // cycle earlier)
            /* verilator lint_off UNUSEDSIGNAL */
            logic [2*S2*PW-1:0] tree;       // every node (the synthesis form's register input)
            logic [2*S2*PW-1:0] treg;       // only the registered heights are used (and kept)
            logic [SIMD-1:0]    xn;         // XNOR of inputs and weights (BIPOLAR inputs only)
            logic [PW-1:0]      dot;        // bits above ACC_W are dropped: the sum fits ACC_W
            /* verilator lint_on UNUSEDSIGNAL */
            if (IN_BIPOLAR != 0) begin : g_xnor
                assign xn = ~(xp[SIMD-1:0] ^ wp[p*SIMD +: SIMD]);
            end else begin : g_noxnor
                assign xn = '0;
            end
            for (n = 2*S2 - 1; n >= 1; n = n - 1) begin : g_node
                logic [PW-1:0] sum;         // the node's value
                logic [PW-1:0] v;           // as its parent sees it
                if (n >= S2 + SIMD) begin : g_pad
                    assign sum = '0;
                end else if (n >= S2 && IN_BIPOLAR != 0) begin : g_bit
                    assign sum = PW'(xn[n - S2]);
                end else if (n >= S2) begin : g_int
                    logic [PW-1:0] xe;
                    if (IN_SIGNED != 0) begin : g_s
                        assign xe = PW'($signed(xp[(n - S2)*IN_EW +: IN_EW]));
                    end else begin : g_u
                        assign xe = PW'(xp[(n - S2)*IN_EW +: IN_EW]);
                    end
                    assign sum = wp[p*SIMD + n - S2] ? xe : -xe;
                end else begin : g_add
                    assign sum = g_node[2*n].v + g_node[2*n + 1].v;
                end
                if (tree_reg(LV - node_depth(n)) == 0) begin : g_wire
                    assign v = sum;
                end else if (NODE_REGS) begin : g_reg
                    logic [PW-1:0] r;
                    always_ff @(posedge clk) if (adv) r <= sum;
                    assign v = r;
                end else begin : g_treg
                    assign v = treg[n*PW +: PW];
                end
                if (!NODE_REGS) begin : g_gather
                    assign tree[n*PW +: PW] = sum;
                end
            end
            if (NODE_REGS) begin : g_no_treg
                assign tree = '0;
                assign treg = '0;
            end else begin : g_treg_all
                assign tree[PW-1:0] = '0;   // node 0 does not exist
                always_ff @(posedge clk) if (adv && TREE_REGS > 0) treg <= tree;
            end
            if (IN_BIPOLAR != 0) begin : g_popcount
                assign dot = (g_node[1].v << 1) - PW'(SIMD);   // 2*popcount - SIMD
            end else begin : g_sum
                assign dot = g_node[1].v;
            end
            always_ff @(posedge clk) if (adv) psum2[p*ACC_W +: ACC_W] <= ACC_W'($signed(dot));
        end
    endgenerate

    // ------------------------------------------------------------------ stage 3: accumulators
    logic             acc_done;     // acc holds the finished sums of one neuron fold
    logic [PE*ACC_W-1:0] acc;
    logic [PE*OUT_EW-1:0] y;        // the output beat (combinational)
    logic             y_valid;      // y holds a finished fold

    always_ff @(posedge clk) begin
        if (rst) acc_done <= 1'b0;
        else if (adv) acc_done <= v2 && last2;
    end

    generate
        for (p = 0; p < PE; p = p + 1) begin : g_acc
            always_ff @(posedge clk) begin
                if (adv && v2) begin
                    if (first2) acc[p*ACC_W +: ACC_W] <= psum2[p*ACC_W +: ACC_W];
                    else acc[p*ACC_W +: ACC_W] <= acc[p*ACC_W +: ACC_W] + psum2[p*ACC_W +: ACC_W];
                end
            end
        end

        if (N_THRES == 0) begin : g_noact
            assign y_valid = acc_done;
            for (p = 0; p < PE; p = p + 1) begin : g_out
                assign y[p*OUT_EW +: OUT_EW] = OUT_EW'($signed(acc[p*ACC_W +: ACC_W]));
            end
        end else begin : g_act
            // the activation shared with bnn_threshold (bnn_thres_step.sv): thresholds of a fold are
            // read while its last step enters the adder tree's output register (stage 2), copied
            // into the compare register while its partial sums enter the accumulators
            bnn_thres_step #(.N(PE), .G(NF), .X_W(ACC_W), .N_THRES(N_THRES), .T_W(T_W),
                             .THRES_FILE(THRES_FILE), .DIR_FILE(DIR_FILE), .THRES_SEARCH(THRES_SEARCH),
                             .OUT_EW(OUT_EW), .OUT_BIPOLAR(OUT_BIPOLAR), .Y_MIN(Y_MIN)) u_act (
                .clk(clk), .rst(rst), .adv(adv), .t_rd(adv && cp[CW-1] && cp[CW-3]), .grp(cp[NFW-1:0]),
                .x_valid(acc_done),
                .x(acc), .y_valid(y_valid), .y(y));
        end
    endgenerate

    // ------------------------------------------------------------------ output register + skid
    logic [PE*OUT_EW-1:0] skid_data;
    logic                 take;     // a finished fold leaves the pipeline this cycle
    assign take = adv && y_valid;

    always_ff @(posedge clk) begin
        if (rst) begin
            m_axis_tvalid <= 1'b0;
            skid_valid <= 1'b0;
        end else if (m_axis_tvalid && m_axis_tready) begin
            if (skid_valid) begin
                skid_valid <= 1'b0;
            end else begin
                m_axis_tvalid <= take;
            end
        end else if (!m_axis_tvalid) begin
            m_axis_tvalid <= take;
        end else if (take) begin
            skid_valid <= 1'b1;
        end
    end

    always_ff @(posedge clk) begin
        if (!m_axis_tvalid || m_axis_tready) m_axis_tdata <= skid_valid ? skid_data : y;
        if (take && m_axis_tvalid && !m_axis_tready) skid_data <= y;
    end
endmodule
