// bnn_thres_step: the multi-threshold activation shared by bnn_mvtu (on its accumulators) and
// bnn_threshold (on a stream): per element x of group g (an MVTU neuron fold, a stream's channel fold),
// y = Y_MIN + #{k : T_k <= x} (direction +1) or Y_MIN + #{k : T_k >= x} (direction -1); BIPOLAR output
// (OUT_BIPOLAR, N_THRES = 1): the count 0/1 is the bit 0/1 = -1/+1 (Y_MIN unused).
//   THRES_SEARCH = 0 (or N_THRES = 1): one comparator per threshold and a popcount tree; y is
//     combinational in the cycle x_valid is high (rows need not be sorted);
//   THRES_SEARCH = 1: pipelined binary search over each row sorted ascending (N_THRES = 2^S - 1):
//     S levels of one comparator each in 2S-3 registered stages (moving when adv is high; levels
//     j >= 2 wait one stage for their ROM), so y is valid 2S-3 advancing cycles after x; direction
//     +1 finds #{T <= x} bit by bit (MSB first), direction -1 finds c' = #{T < x} and outputs
//     N_THRES - c' = ~c'.
// Every memory read is registered once more before its comparator: a block RAM's clock-to-out
// (about 5 ns on the ECP5) would otherwise start the comparator's path.
//
// Parameters
//   N           elements per beat (PE of a matrix unit, E of a stream)
//   G           threshold groups: the memories' depth (NF, or C/E); GW its address width (derived)
//   X_W         bits of an element, two's complement (the caller sign- or zero-extends)
//   N_THRES, T_W, THRES_FILE, DIR_FILE, THRES_SEARCH, OUT_EW, OUT_BIPOLAR, Y_MIN: as in bnn_mvtu
//               (memory layouts there: word g holds the N rows of group g)
// Timing: t_rd (with grp) loads group grp's thresholds and directions into the read register; every
// advancing cycle (adv) copies the read register into the compare register, and x of group g must
// arrive (x_valid) in the cycle after an advancing cycle in which the read register held group g:
// two advancing cycles after its t_rd (bnn_mvtu), or with the read register kept on the next
// beat's group (bnn_threshold reads every cycle). The caller holds its own output register.
module bnn_thres_step #(
    parameter int N = 2,
    parameter int G = 1,
    parameter int X_W = 8,
    parameter int N_THRES = 3,
    parameter int T_W = 8,
    parameter THRES_FILE = "",
    parameter DIR_FILE = "",
    parameter int THRES_SEARCH = 0,
    parameter int OUT_EW = 2,
    parameter int OUT_BIPOLAR = 0,
    parameter int Y_MIN = 0,
    parameter int GW = G > 1 ? $clog2(G) : 1
) (
    input  logic                clk,
    input  logic                rst,
    input  logic                adv,
    input  logic                t_rd,
    input  logic [GW-1:0]       grp,
    input  logic                x_valid,
    input  logic [N*X_W-1:0]    x,
    output logic                y_valid,
    output logic [N*OUT_EW-1:0] y
);
    localparam int TWW = N * N_THRES * T_W;
    localparam int CW = (X_W > T_W ? X_W : T_W) + 1;       // comparison width
    localparam int CNTW = $clog2(N_THRES + 1);
    localparam int L2 = 1 << $clog2(N_THRES);              // popcount-tree leaves
    genvar p, j;
    logic [N*CNTW-1:0] counts;     // per element, the number of thresholds passed (both circuits)

    generate
        if (N < 1 || G < 1 || X_W < 1 || T_W < 1 || N_THRES < 1) begin : g_bad_size
            $error("bnn_thres_step: need N, G, X_W, T_W, N_THRES >= 1 (N=%0d G=%0d X_W=%0d T_W=%0d N_THRES=%0d)",
                   N, G, X_W, T_W, N_THRES);
        end
        if (THRES_SEARCH != 0 && N_THRES > 1 && ((N_THRES + 1) & N_THRES) != 0) begin : g_bad_search
            $error("bnn_thres_step: need N_THRES = 2^S - 1 for THRES_SEARCH = 1 (N_THRES=%0d)", N_THRES);
        end
        if (THRES_SEARCH != 0 && N_THRES > 1023) begin : g_bad_levels
            $error("bnn_thres_step: need N_THRES <= 1023 for THRES_SEARCH = 1: the level files are named by one digit (N_THRES=%0d)", N_THRES);
        end
        if (OUT_BIPOLAR != 0 && N_THRES != 1) begin : g_bad_bipolar
            $error("bnn_thres_step: need N_THRES = 1 for OUT_BIPOLAR (N_THRES=%0d)", N_THRES);
        end
    endgenerate

    // directions (1 = -1) of group grp: read register dq, compare register dr (both circuits)
    logic [N-1:0] dmem [0:G-1];
    logic [N-1:0] dq, dr;
    initial if (DIR_FILE != "") $readmemh(DIR_FILE, dmem);
    always_ff @(posedge clk) begin
        if (t_rd) dq <= dmem[grp];
        if (adv) dr <= dq;
    end

    generate
        if (THRES_SEARCH == 0 || N_THRES == 1) begin : g_par
            // thresholds of group grp: read register tq, compare register tr
            logic [TWW-1:0]     tmem [0:G-1];
            initial if (THRES_FILE != "") $readmemh(THRES_FILE, tmem);
            logic [TWW-1:0]     tq, tr;
            always_ff @(posedge clk) begin
                if (t_rd) tq <= tmem[grp];
                if (adv) tr <= tq;
            end
            assign y_valid = x_valid;
            /* verilator lint_off UNUSEDSIGNAL */
            logic unused;
            assign unused = rst;
            /* verilator lint_on UNUSEDSIGNAL */

            // ---------------------------------------------------------- comparators
            for (p = 0; p < N; p = p + 1) begin : g_el
                logic [CNTW-1:0]      cnt;
                logic [CW-1:0]        a, t;
                logic [CW:0]          d;        // {a - t - dir, carry-in bit}
                logic                 hit;
                logic [2*L2*CNTW-1:0] ct;       // heap-ordered popcount tree of the hits, root at node 1
                always_comb begin
                    a = CW'($signed(x[p*X_W +: X_W]));
                    t = '0;
                    d = '0;
                    hit = 1'b0;
                    ct = '0;
                    for (int k = 0; k < N_THRES; k++) begin
                        t = CW'($signed(tr[(p*N_THRES + k)*T_W +: T_W]));
                        // one adder per threshold: a + ~t + !dir = a - t (dir 0: count when >= 0, i.e. t <= a)
                        // or a - t - 1 (dir 1: count when < 0, i.e. t >= a); the carry-in rides on an extra LSB
                        d = {a, 1'b1} + {~t, ~dr[p]};
                        hit = (d[CW] == dr[p]);
                        ct[(L2 + k)*CNTW +: CNTW] = CNTW'(hit);
                    end
                    for (int n = L2 - 1; n >= 1; n--) begin
                        ct[n*CNTW +: CNTW] = ct[2*n*CNTW +: CNTW] + ct[(2*n + 1)*CNTW +: CNTW];
                    end
                    cnt = ct[CNTW +: CNTW];
                end
                assign counts[p*CNTW +: CNTW] = cnt;
            end
        end else begin : g_search
            // binary search over S levels in NST = 2S-3 registered stages after stage 0 (the cycle x
            // holds the beat): level 0 compares in stage 0, level 1 in stage 1, level j >= 2 in stage
            // 2j-1 after a wait stage 2j-2. Level j compares x with one threshold (level 0: the
            // median; j >= 1: one of the two children read for it, chosen by the bit found at level
            // j-1) and appends the result to the bits found (per element an S-bit field, the newest
            // bit lowest). Candidates come from registers, never straight from a memory: level 1's
            // ROM (address: the group) is read while the median is copied into its compare register
            // and registered during stage 0; level j >= 2's (address: {group, the bits found before
            // level j-1}) is read during level j-1's stage and registered in the wait stage.
            localparam int S = $clog2(N_THRES + 1);
            localparam int NST = 2 * S - 3;
            localparam int AW = N * X_W;
            localparam int CTW = N * 2 * T_W;       // a level's two candidates per element
            logic [T_W*N-1:0] t0mem [0:G-1];
            logic [CTW-1:0]   t1mem [0:G-1];
            initial if (THRES_FILE != "") begin
                $readmemh({THRES_FILE, "0.mem"}, t0mem);
                $readmemh({THRES_FILE, "1.mem"}, t1mem);
            end
            logic [N*T_W-1:0] q0, q0r;              // the median: read, compare register
            logic [CTW-1:0]   q1, q1r;              // level 1's children: read during the copy, register
            logic [GW-1:0]    grp0, grpr;           // the group beside q0, q0r
            always_ff @(posedge clk) begin
                if (t_rd) begin
                    q0 <= t0mem[grp];
                    grp0 <= grp;
                end
                if (adv) begin
                    q0r <= q0;
                    grpr <= grp0;
                    q1 <= t1mem[grp0];
                    q1r <= q1;
                end
            end
            // per stage st (0 .. NST): l* = stage 0's sources, then the registers r* (index st-1)
            logic [NST:0]            lv;        // stage valid
            logic [(NST+1)*AW-1:0]   la;        // input elements
            logic [(NST+1)*N-1:0]    ld;        // directions (1 = -1)
            /* verilator lint_off UNUSEDSIGNAL */
            logic [(NST+1)*GW-1:0]   lgrp;      // the group (addresses the ROMs; unused at the last stages)
            logic [(NST+1)*N*S-1:0]  lp;        // bits found so far (the top bit of each field unused)
            logic [(NST+1)*CTW-1:0]  lt;        // candidates of a compare stage (stage 0: one, low)
            logic [(NST+1)*N-1:0]    lh;        // comparison results (combinational; wait stages: none)
            /* verilator lint_on UNUSEDSIGNAL */
            logic [NST-1:0]          rv;
            logic [NST*AW-1:0]       ra;
            logic [NST*N-1:0]        rd;
            logic [NST*GW-1:0]       rgrp;
            logic [NST*N*S-1:0]      rp;
            assign lv = {rv, x_valid};
            assign lgrp = {rgrp, grpr};
            assign la = {ra, x};
            assign ld = {rd, dr};
            assign lp = {rp, {(N*S){1'b0}}};
            for (p = 0; p < N; p = p + 1) begin : g_t0
                assign lt[p*2*T_W +: 2*T_W] = (2*T_W)'(q0r[p*T_W +: T_W]);
            end
            assign lt[CTW +: CTW] = q1r;

            for (j = 0; j <= NST; j = j + 1) begin : g_st
                // stage j: level lvl, comparing unless it waits for its ROM (even stages >= 2)
                localparam int CMP = (j < 2 || j % 2 == 1) ? 1 : 0;
                localparam int LVL = j < 2 ? j : (CMP != 0 ? (j + 1) / 2 : j / 2 + 1);
                // (a wait stage fills the candidates of the compare stage after it)
                if (j > 0) begin : g_reg
                    always_ff @(posedge clk) begin
                        if (rst) rv[j-1] <= 1'b0;
                        else if (adv) rv[j-1] <= lv[j-1];
                        if (adv) begin
                            rgrp[(j-1)*GW +: GW] <= lgrp[(j-1)*GW +: GW];
                            ra[(j-1)*AW +: AW] <= la[(j-1)*AW +: AW];
                            rd[(j-1)*N +: N] <= ld[(j-1)*N +: N];
                        end
                    end
                    // the previous stage's bits, with its result appended when it compared
                    for (p = 0; p < N; p = p + 1) begin : g_bits
                        always_ff @(posedge clk) begin
                            if (adv) begin
                                if (j == 1 || j % 2 == 0)
                                    rp[((j-1)*N + p)*S +: S] <= {lp[((j-1)*N + p)*S +: S-1], lh[(j-1)*N + p]};
                                else
                                    rp[((j-1)*N + p)*S +: S] <= lp[((j-1)*N + p)*S +: S];
                            end
                        end
                    end
                end
                if (CMP == 0) begin : g_rom
                    // wait stage of level LVL >= 2: its ROM, one copy per element (each follows its
                    // own path), was read during the previous stage (level LVL-1) at word {grp, P}
                    // (P: the LVL-1 bits found before it); the read data is registered here
                    localparam int D = G << (LVL - 1);
                    localparam int AWJ = (G > 1 ? GW : 0) + LVL - 1;
                    for (p = 0; p < N; p = p + 1) begin : g_el
                        logic [CTW-1:0]   tmem [0:D-1];
                        logic [AWJ-1:0]   addr;
                        logic [2*T_W-1:0] rdq, rdr;     // the ROM's read register, its copy
                        initial if (THRES_FILE != "") $readmemh({THRES_FILE, 8'(48 + LVL), ".mem"}, tmem);
                        if (G > 1) begin : g_an
                            assign addr = {lgrp[(j-1)*GW +: GW], lp[((j-1)*N + p)*S +: LVL-1]};
                        end else begin : g_ap       // a single group: P alone
                            assign addr = lp[((j-1)*N + p)*S +: LVL-1];
                        end
                        always_ff @(posedge clk) begin
                            if (adv) begin
                                rdq <= tmem[addr][p*2*T_W +: 2*T_W];
                                rdr <= rdq;
                            end
                        end
                        assign lt[((j+1)*N + p)*2*T_W +: 2*T_W] = rdr;  // the candidates of stage j+1
                    end
                    assign lh[j*N +: N] = '0;
                end else begin : g_cmp
                    for (p = 0; p < N; p = p + 1) begin : g_el
                        logic [CW-1:0]  a, t;
                        logic [CW:0]    d;      // {a - t - dir, carry-in bit}
                        logic [T_W-1:0] tj;     // this level's threshold
                        if (j == 0) begin : g_t0
                            assign tj = lt[p*2*T_W +: T_W];
                        end else begin : g_tn   // the child chosen by the bit found at level LVL-1
                            assign tj = lp[(j*N + p)*S] ? lt[(j*N + p)*2*T_W + T_W +: T_W]
                                                        : lt[(j*N + p)*2*T_W +: T_W];
                        end
                        assign a = CW'($signed(la[j*AW + p*X_W +: X_W]));
                        assign t = CW'($signed(tj));
                        // a + ~t + !dir: a - t (dir +1) or a - t - 1 (dir -1); bit = result >= 0,
                        // i.e. t <= x (counting T <= x) or t < x (counting T < x)
                        assign d = {a, 1'b1} + {~t, ~ld[j*N + p]};
                        assign lh[j*N + p] = !d[CW];
                    end
                end
            end
            for (j = 2; j <= NST; j = j + 2) begin : g_lt_wait
                assign lt[j*CTW +: CTW] = '0;   // wait stages use no candidates
            end
            assign y_valid = lv[NST];
            for (p = 0; p < N; p = p + 1) begin : g_cnt
                logic [S-1:0] c;
                assign c = {lp[(NST*N + p)*S +: S-1], lh[NST*N + p]};
                assign counts[p*CNTW +: CNTW] = ld[NST*N + p] ? ~c : c;   // direction -1: N_THRES - #{T < x}
            end
        end

        // ---------------------------------------------------------- output: y_min + count, or a sign bit
        for (p = 0; p < N; p = p + 1) begin : g_out
            if (OUT_BIPOLAR != 0) begin : g_bip
                assign y[p*OUT_EW +: OUT_EW] = OUT_EW'(counts[p*CNTW]);
            end else begin : g_int
                assign y[p*OUT_EW +: OUT_EW] = OUT_EW'(Y_MIN) + OUT_EW'(counts[p*CNTW +: CNTW]);
            end
        end
    endgenerate
endmodule
