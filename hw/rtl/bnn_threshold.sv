// bnn_threshold: multi-threshold activation of a stream (IR op Threshold).
//
// Per element x of channel c: y = Y_MIN + #{k : T_ck <= x} (direction +1) or
// Y_MIN + #{k : T_ck >= x} (direction -1). Each threshold is compared on its own, so the rows
// need not be sorted. BIPOLAR output (OUT_BIPOLAR, N_THRES = 1): the count 0/1 is the bit
// 0/1 = -1/+1 (Y_MIN is not used).
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
//               (both: one hex word per line, MSB first; hw/mvtu_mem.py writes them)
//   OUT_EW, OUT_BIPOLAR, Y_MIN   output element bits, BIPOLAR output, the count's offset
//
// Streams: s_axis beats of E elements of IN_EW bits, m_axis beats of E elements of OUT_EW bits,
// element i at bits [i*EW +: EW]; beat cf of each pixel carries channels cf*E .. cf*E+E-1.
// One beat per cycle (C/E cycles per pixel) when nothing stalls. Latency: an input beat
// accepted at cycle t is valid on m_axis from cycle t+2: threshold-memory read and input
// register, then one adder per threshold, a popcount tree and + Y_MIN into the output register
// (beside a one-beat skid register: s_axis_tready, m_axis_tvalid and m_axis_tdata come from
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

    // ------------------------------------------------------------------ stage 1: operands
    logic [TWW-1:0]     tmem [0:CF-1];
    logic [E-1:0]       dmem [0:CF-1];
    initial if (THRES_FILE != "") $readmemh(THRES_FILE, tmem);
    initial if (DIR_FILE != "") $readmemh(DIR_FILE, dmem);

    logic               v1;
    logic [TWW-1:0]     tq;
    logic [E-1:0]       dq;
    logic [E*IN_EW-1:0] x1;

    always_ff @(posedge clk) begin
        if (rst) v1 <= 1'b0;
        else if (adv) v1 <= step;
        if (step) begin
            tq <= tmem[cf];
            dq <= dmem[cf];
            x1 <= s_axis_tdata;
        end
    end

    // ------------------------------------------------------------------ comparators
    logic [E*OUT_EW-1:0] y;
    genvar p;
    generate
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
    endgenerate

    // ------------------------------------------------------------------ output register + skid
    logic [E*OUT_EW-1:0] skid_data;
    logic                take;
    assign take = adv && v1;

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
