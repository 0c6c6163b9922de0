// bnn_threshold: multi-threshold activation of a stream (IR op Threshold).
//
// Per element x of channel c: y = Y_MIN + #{k : T_ck <= x} (direction +1) or
// Y_MIN + #{k : T_ck >= x} (direction -1). BIPOLAR output (OUT_BIPOLAR, N_THRES = 1): the count
// 0/1 is the bit 0/1 = -1/+1 (Y_MIN is not used). Two circuits, as in bnn_mvtu:
//   THRES_SEARCH = 0: one comparator per threshold and a popcount (rows need not be sorted);
//   THRES_SEARCH = 1: pipelined binary search over each row sorted ascending, N_THRES = 2^S - 1:
//     S levels of one comparator each; direction +1 finds #{T <= x} bit by bit (MSB first),
//     direction -1 finds c' = #{T < x} and outputs N_THRES - c' = ~c'.
//
// Parameters
//   C           channels (the stream's innermost dimension)
//   E           elements per beat (divides C); CF = C/E beats per pixel
//   IN_EW       bits per input element; IN_SIGNED: 1 two's complement (default), 0 unsigned
//   N_THRES     thresholds per channel L (>= 1)
//   T_W         signed threshold width
//   THRES_FILE  $readmemh file: depth CF, width E*N_THRES*T_W; word cf, element p*N_THRES+k (bits
//               [(p*N_THRES+k)*T_W +: T_W], two's complement) = threshold k of channel cf*E+p
//   DIR_FILE    $readmemh file: depth CF, width E; word cf, bit p = 1 when channel cf*E+p has
//               direction -1 (count T >= x)
//   THRES_SEARCH 1: binary search (N_THRES = 1 always uses the comparator); THRES_FILE is then
//               the prefix of the level files THRES_FILE + "<j>.mem" (j = 0 .. S-1, a digit),
//               each row sorted ascending T_0 <= .. <= T_{N_THRES-1}: level 0 depth CF, width
//               E*T_W, element p = T_{2^(S-1)-1}; level j >= 1 depth CF*2^(j-1), width E*2*T_W,
//               word cf*2^(j-1)+P, element p*2+h = T_{(2(2P+h)+1)*2^(S-1-j)-1} where P (j-1 bits)
//               and h are the bits found at levels 0..j-1 for channel cf*E+p
//               (both: one hex word per line, MSB first; hw/mvtu_mem.py writes them)
//   OUT_EW, OUT_BIPOLAR, Y_MIN   output element bits, BIPOLAR output, the count's offset
//
// Streams: s_axis beats of E elements of IN_EW bits, m_axis beats of E elements of OUT_EW bits,
// element i at bits [i*EW +: EW]; beat cf of each pixel carries channels cf*E .. cf*E+E-1.
// One beat per cycle (C/E cycles per pixel) when nothing stalls. Latency: an input beat
// accepted at cycle t is valid on m_axis from cycle t+2: threshold-memory read and input
// register, then one adder per threshold, a popcount tree and + Y_MIN into the output register.
// THRES_SEARCH = 1: S-1 more registered levels (one comparator per element and the next level's
// ROM read each), valid from cycle t+S+1 (N_THRES = 15: t+5, 63: t+7), same throughput
// (output register beside a one-beat skid register: s_axis_tready, m_axis_tvalid and m_axis_tdata come from
// registers only).
module bnn_threshold #(
    parameter int C = 4,
    parameter int E = 2,
    parameter int IN_EW = 8,
    parameter int IN_SIGNED = 1,
    parameter int N_THRES = 3,
    parameter int T_W = 8,
    parameter THRES_FILE = "",
    parameter DIR_FILE = "",
    parameter int THRES_SEARCH = 0,
    parameter int OUT_EW = 2,
    parameter int OUT_BIPOLAR = 0,
    parameter int Y_MIN = 0
) (
    input  logic                  clk,
    input  logic                  rst,
    input  logic [E*IN_EW-1:0]    s_axis_tdata,
    input  logic                  s_axis_tvalid,
    output logic                  s_axis_tready,
    output logic [E*OUT_EW-1:0]   m_axis_tdata,
    output logic                  m_axis_tvalid,
    input  logic                  m_axis_tready
);
    localparam int CF = C / E;
    localparam int CFW = CF > 1 ? $clog2(CF) : 1;
    localparam logic [CFW-1:0] CF_LAST = CFW'(CF - 1);
    localparam int TWW = E * N_THRES * T_W;
    localparam int XW = IN_EW + 1;                         // input as a signed value
    localparam int CW = (XW > T_W ? XW : T_W) + 1;         // comparison width
    localparam int CNTW = $clog2(N_THRES + 1);
    localparam int L2 = 1 << $clog2(N_THRES);              // popcount-tree leaves

    logic           adv, step, skid_valid;
    logic [CFW-1:0] cf;

    assign adv = !skid_valid;
    assign s_axis_tready = adv;
    assign step = adv && s_axis_tvalid;

    always_ff @(posedge clk) begin
        if (rst) cf <= '0;
        else if (step) cf <= (cf == CF_LAST) ? '0 : cf + 1'b1;
    end

    logic [E*OUT_EW-1:0] y;         // the output beat (combinational)
    logic                y_valid;   // y holds a beat
    logic [E*IN_EW-1:0]  x1;        // the input beat, registered
    logic                v1;
    genvar p, j;

    always_ff @(posedge clk) begin
        if (rst) v1 <= 1'b0;
        else if (adv) v1 <= step;
        if (step) x1 <= s_axis_tdata;
    end

    generate
        if (THRES_SEARCH == 0 || N_THRES == 1) begin : g_par
            // ---------------------------------------------------------- stage 1: threshold read
            logic [TWW-1:0]     tmem [0:CF-1];
            logic [E-1:0]       dmem [0:CF-1];
            initial if (THRES_FILE != "") $readmemh(THRES_FILE, tmem);
            initial if (DIR_FILE != "") $readmemh(DIR_FILE, dmem);
            logic [TWW-1:0]     tq;
            logic [E-1:0]       dq;
            always_ff @(posedge clk) begin
                if (step) begin
                    tq <= tmem[cf];
                    dq <= dmem[cf];
                end
            end
            assign y_valid = v1;

            // ---------------------------------------------------------- comparators
            for (p = 0; p < E; p = p + 1) begin : g_el
                logic [CNTW-1:0]      cnt;
                logic [CW-1:0]        a, t;
                logic [CW:0]          d;        // {a - t - dir, carry-in bit}
                logic                 hit;
                logic [2*L2*CNTW-1:0] ct;       // heap-ordered popcount tree of the hits, root at node 1
                always_comb begin
                    if (IN_SIGNED != 0) a = CW'($signed(x1[p*IN_EW +: IN_EW]));
                    else a = CW'($signed({1'b0, x1[p*IN_EW +: IN_EW]}));
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
                if (OUT_BIPOLAR != 0) begin : g_bip
                    assign y[p*OUT_EW +: OUT_EW] = OUT_EW'(cnt[0]);
                end else begin : g_int
                    assign y[p*OUT_EW +: OUT_EW] = OUT_EW'(Y_MIN) + OUT_EW'(cnt);
                end
            end
        end else begin : g_search
            // binary search: level 0 is the cycle x1 holds the beat, levels 1 .. S-1 registers.
            // Level j compares x with its threshold (level 0: the median, level j >= 1: one of the
            // two children read during level j-1, chosen by the bit found there) and appends the
            // result to the bits found (per element an S-bit field, low j bits).
            localparam int S = $clog2(N_THRES + 1);
            localparam int AW = E * IN_EW;
            logic [T_W*E-1:0]   t0mem [0:CF-1];
            logic [E-1:0]       dmem [0:CF-1];
            initial if (THRES_FILE != "") $readmemh({THRES_FILE, "0.mem"}, t0mem);
            initial if (DIR_FILE != "") $readmemh(DIR_FILE, dmem);
            logic [E*T_W-1:0]   q0;
            logic [E-1:0]       dq;
            logic [CFW-1:0]     cf1;
            always_ff @(posedge clk) begin
                if (step) begin
                    q0 <= t0mem[cf];
                    dq <= dmem[cf];
                    cf1 <= cf;
                end
            end
            // per level j (0 .. S-1): l* = level 0's sources, then the registers r* (index j-1)
            logic [S-1:0]          lv;          // level valid
            logic [S*AW-1:0]       la;          // input elements
            logic [S*E-1:0]        ld;          // directions (1 = -1)
            /* verilator lint_off UNUSEDSIGNAL */
            logic [S*CFW-1:0]      lcf;         // channel fold (selects the ROM words; unused at level S-1)
            logic [S*E*S-1:0]      lp;          // bits found so far (the top bit of each field unused)
            logic [S*E*2*T_W-1:0]  lt;          // candidate thresholds (level 0: one, low half)
            /* verilator lint_on UNUSEDSIGNAL */
            logic [S*E-1:0]        lh;          // comparison results (combinational)
            logic [S-2:0]              rv;
            logic [(S-1)*AW-1:0]       ra;
            logic [(S-1)*E-1:0]        rd;
            logic [(S-1)*CFW-1:0]      rcf;
            logic [(S-1)*E*S-1:0]      rp;
            logic [(S-1)*E*2*T_W-1:0]  rt;
            assign lv = {rv, v1};
            assign lcf = {rcf, cf1};
            assign la = {ra, x1};
            assign ld = {rd, dq};
            assign lp = {rp, {(E*S){1'b0}}};
            for (p = 0; p < E; p = p + 1) begin : g_t0
                assign lt[p*2*T_W +: 2*T_W] = {{T_W{1'b0}}, q0[p*T_W +: T_W]};
            end
            assign lt[E*2*T_W +: (S-1)*E*2*T_W] = rt;

            for (j = 0; j < S; j = j + 1) begin : g_lv
                if (j > 0) begin : g_reg
                    always_ff @(posedge clk) begin
                        if (rst) rv[j-1] <= 1'b0;
                        else if (adv) rv[j-1] <= lv[j-1];
                        if (adv) begin
                            rcf[(j-1)*CFW +: CFW] <= lcf[(j-1)*CFW +: CFW];
                            ra[(j-1)*AW +: AW] <= la[(j-1)*AW +: AW];
                            rd[(j-1)*E +: E] <= ld[(j-1)*E +: E];
                        end
                    end
                    // ROM of level j, one copy per element (each follows its own path), read during
                    // level j-1 at word {cf, P}; only the element's own slice is used
                    for (p = 0; p < E; p = p + 1) begin : g_rom
                        localparam int D = CF << (j - 1);
                        logic [E*2*T_W-1:0] tmem [0:D-1];
                        localparam int AWJ = j == 1 ? CFW : (CF > 1 ? CFW : 0) + j - 1;
                        logic [AWJ-1:0]   addr;       // {cf, P}
                        initial if (THRES_FILE != "") $readmemh({THRES_FILE, 8'(48 + j), ".mem"}, tmem);
                        if (j == 1) begin : g_a1
                            assign addr = lcf[0 +: CFW];
                        end else if (CF > 1) begin : g_an
                            assign addr = {lcf[(j-1)*CFW +: CFW], lp[((j-1)*E + p)*S +: j-1]};
                        end else begin : g_ap       // a single fold: P alone
                            assign addr = lp[((j-1)*E + p)*S +: j-1];
                        end
                        always_ff @(posedge clk) begin
                            if (adv) begin
                                rt[((j-1)*E + p)*2*T_W +: 2*T_W] <= tmem[addr][p*2*T_W +: 2*T_W];
                                rp[((j-1)*E + p)*S +: S] <= {lp[((j-1)*E + p)*S +: S-1], lh[(j-1)*E + p]};
                            end
                        end
                    end
                end
                for (p = 0; p < E; p = p + 1) begin : g_cmp
                    logic [CW-1:0]  a, t;
                    logic [CW:0]    d;          // {a - t - dir, carry-in bit}
                    logic [T_W-1:0] tj;         // this level's threshold
                    if (j == 0) begin : g_t0
                        assign tj = lt[p*2*T_W +: T_W];
                    end else begin : g_tn       // the child chosen by the bit found at level j-1
                        assign tj = lp[(j*E + p)*S] ? lt[(j*E + p)*2*T_W + T_W +: T_W]
                                                    : lt[(j*E + p)*2*T_W +: T_W];
                    end
                    if (IN_SIGNED != 0) begin : g_s
                        assign a = CW'($signed(la[j*AW + p*IN_EW +: IN_EW]));
                    end else begin : g_u
                        assign a = CW'($signed({1'b0, la[j*AW + p*IN_EW +: IN_EW]}));
                    end
                    assign t = CW'($signed(tj));
                    // a + ~t + !dir: a - t (dir +1) or a - t - 1 (dir -1); bit = result >= 0,
                    // i.e. t <= x (counting T <= x) or t < x (counting T < x)
                    assign d = {a, 1'b1} + {~t, ~ld[j*E + p]};
                    assign lh[j*E + p] = !d[CW];
                end
            end
            assign y_valid = lv[S-1];
            for (p = 0; p < E; p = p + 1) begin : g_out
                logic [S-1:0] c, cnt;
                assign c = {lp[((S-1)*E + p)*S +: S-1], lh[(S-1)*E + p]};
                assign cnt = ld[(S-1)*E + p] ? ~c : c;      // direction -1: N_THRES - #{T < x}
                if (OUT_BIPOLAR != 0) begin : g_bip
                    assign y[p*OUT_EW +: OUT_EW] = OUT_EW'(cnt[0]);
                end else begin : g_int
                    assign y[p*OUT_EW +: OUT_EW] = OUT_EW'(Y_MIN) + OUT_EW'(cnt);
                end
            end
        end
    endgenerate

    // ------------------------------------------------------------------ output register + skid
    logic [E*OUT_EW-1:0] skid_data;
    logic                take;
    assign take = adv && y_valid;

    always_ff @(posedge clk) begin
        if (rst) begin
            m_axis_tvalid <= 1'b0;
            skid_valid <= 1'b0;
        end else if (m_axis_tvalid && m_axis_tready) begin
            if (skid_valid) skid_valid <= 1'b0;
            else m_axis_tvalid <= take;
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
