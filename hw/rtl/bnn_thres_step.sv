// bnn_thres_step: the multi-threshold activation shared by bnn_mvtu (on its accumulators) and
// bnn_threshold (on a stream): per element x of group g (an MVTU neuron fold, a stream's channel fold),
// y = Y_MIN + #{k : T_k <= x} (direction +1) or Y_MIN + #{k : T_k >= x} (direction -1); BIPOLAR output
// (OUT_BIPOLAR, N_THRES = 1): the count 0/1 is the bit 0/1 = -1/+1 (Y_MIN unused).
//   THRES_SEARCH = 0 (or N_THRES = 1): one comparator per threshold and a popcount tree; y is
//     combinational in the cycle x_valid is high (rows need not be sorted);
//   THRES_SEARCH = 1: pipelined binary search over each row sorted ascending (N_THRES = 2^S - 1):
//     S levels of one comparator each, S-1 of them registered (moving when adv is high), so y is
//     valid S-1 advancing cycles after x; direction +1 finds #{T <= x} bit by bit (MSB first),
//     direction -1 finds c' = #{T < x} and outputs N_THRES - c' = ~c'.
//
// Parameters
//   N           elements per beat (PE of a matrix unit, E of a stream)
//   G           threshold groups: the memories' depth (NF, or C/E); GW its address width (derived)
//   X_W         bits of an element, two's complement (the caller sign- or zero-extends)
//   N_THRES, T_W, THRES_FILE, DIR_FILE, THRES_SEARCH, OUT_EW, OUT_BIPOLAR, Y_MIN: as in bnn_mvtu
//               (memory layouts there: word g holds the N rows of group g)
// Timing: t_rd (with grp) reads group grp's thresholds and directions; x and x_valid arrive the next
// cycle. The caller holds its own output register; this module has none.
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

    // directions (1 = -1) of group grp: both circuits read them the same way
    logic [N-1:0] dmem [0:G-1];
    logic [N-1:0] dq;
    initial if (DIR_FILE != "") $readmemh(DIR_FILE, dmem);
    always_ff @(posedge clk) if (t_rd) dq <= dmem[grp];

    generate
        if (THRES_SEARCH == 0 || N_THRES == 1) begin : g_par
            // thresholds of group grp, read the cycle before its elements arrive
            logic [TWW-1:0]     tmem [0:G-1];
            initial if (THRES_FILE != "") $readmemh(THRES_FILE, tmem);
            logic [TWW-1:0]     tq;
            always_ff @(posedge clk) if (t_rd) tq <= tmem[grp];
            assign y_valid = x_valid;
            /* verilator lint_off UNUSEDSIGNAL */
            logic unused;
            assign unused = rst ^ adv;
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
                        t = CW'($signed(tq[(p*N_THRES + k)*T_W +: T_W]));
                        // one adder per threshold: a + ~t + !dir = a - t (dir 0: count when >= 0, i.e. t <= a)
                        // or a - t - 1 (dir 1: count when < 0, i.e. t >= a); the carry-in rides on an extra LSB
                        d = {a, 1'b1} + {~t, ~dq[p]};
                        hit = (d[CW] == dq[p]);
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
            // binary search: level 0 is the cycle x holds the beat, levels 1 .. S-1 registers.
            // Level j compares x with its threshold (level 0: the median, level j >= 1: one of the
            // two children read during level j-1, chosen by the bit found there) and appends the
            // result to the bits found (per element an S-bit field, low j bits).
            localparam int S = $clog2(N_THRES + 1);
            localparam int AW = N * X_W;
            logic [T_W*N-1:0]   t0mem [0:G-1];
            initial if (THRES_FILE != "") $readmemh({THRES_FILE, "0.mem"}, t0mem);
            logic [N*T_W-1:0]   q0;
            logic [GW-1:0]     grp1;
            always_ff @(posedge clk) begin
                if (t_rd) begin
                    q0 <= t0mem[grp];
                    grp1 <= grp;
                end
            end
            // per level j (0 .. S-1): l* = level 0's sources, then the registers r* (index j-1)
            logic [S-1:0]          lv;          // level valid
            logic [S*AW-1:0]       la;          // input elements
            logic [S*N-1:0]        ld;          // directions (1 = -1)
            /* verilator lint_off UNUSEDSIGNAL */
            logic [S*GW-1:0]      lgrp;         // channel fold (selects the ROM words; unused at level S-1)
            logic [S*N*S-1:0]      lp;          // bits found so far (the top bit of each field unused)
            logic [S*N*2*T_W-1:0]  lt;          // candidate thresholds (level 0: one, low half)
            /* verilator lint_on UNUSEDSIGNAL */
            logic [S*N-1:0]        lh;          // comparison results (combinational)
            logic [S-2:0]              rv;
            logic [(S-1)*AW-1:0]       ra;
            logic [(S-1)*N-1:0]        rd;
            logic [(S-1)*GW-1:0]      rgrp;
            logic [(S-1)*N*S-1:0]      rp;
            logic [(S-1)*N*2*T_W-1:0]  rt;
            assign lv = {rv, x_valid};
            assign lgrp = {rgrp, grp1};
            assign la = {ra, x};
            assign ld = {rd, dq};
            assign lp = {rp, {(N*S){1'b0}}};
            for (p = 0; p < N; p = p + 1) begin : g_t0
                assign lt[p*2*T_W +: 2*T_W] = {{T_W{1'b0}}, q0[p*T_W +: T_W]};
            end
            assign lt[N*2*T_W +: (S-1)*N*2*T_W] = rt;

            for (j = 0; j < S; j = j + 1) begin : g_lv
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
                    // ROM of level j, one copy per element (each follows its own path), read during
                    // level j-1 at word {grp, P}; only the element's own slice is used
                    for (p = 0; p < N; p = p + 1) begin : g_rom
                        localparam int D = G << (j - 1);
                        logic [N*2*T_W-1:0] tmem [0:D-1];
                        localparam int AWJ = j == 1 ? GW : (G > 1 ? GW : 0) + j - 1;
                        logic [AWJ-1:0]   addr;       // {grp, P}
                        initial if (THRES_FILE != "") $readmemh({THRES_FILE, 8'(48 + j), ".mem"}, tmem);
                        if (j == 1) begin : g_a1
                            assign addr = lgrp[0 +: GW];
                        end else if (G > 1) begin : g_an
                            assign addr = {lgrp[(j-1)*GW +: GW], lp[((j-1)*N + p)*S +: j-1]};
                        end else begin : g_ap       // a single fold: P alone
                            assign addr = lp[((j-1)*N + p)*S +: j-1];
                        end
                        always_ff @(posedge clk) begin
                            if (adv) begin
                                rt[((j-1)*N + p)*2*T_W +: 2*T_W] <= tmem[addr][p*2*T_W +: 2*T_W];
                                rp[((j-1)*N + p)*S +: S] <= {lp[((j-1)*N + p)*S +: S-1], lh[(j-1)*N + p]};
                            end
                        end
                    end
                end
                for (p = 0; p < N; p = p + 1) begin : g_cmp
                    logic [CW-1:0]  a, t;
                    logic [CW:0]    d;          // {a - t - dir, carry-in bit}
                    logic [T_W-1:0] tj;         // this level's threshold
                    if (j == 0) begin : g_t0
                        assign tj = lt[p*2*T_W +: T_W];
                    end else begin : g_tn       // the child chosen by the bit found at level j-1
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
            assign y_valid = lv[S-1];
            for (p = 0; p < N; p = p + 1) begin : g_cnt
                logic [S-1:0] c;
                assign c = {lp[((S-1)*N + p)*S +: S-1], lh[(S-1)*N + p]};
                assign counts[p*CNTW +: CNTW] = ld[(S-1)*N + p] ? ~c : c;   // direction -1: N_THRES - #{T < x}
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
