// bnn_threshold: multi-threshold activation of a stream (IR op Threshold).
//
// Per element x of channel c: y = Y_MIN + #{k : T_ck <= x} (direction +1) or
// Y_MIN + #{k : T_ck >= x} (direction -1). BIPOLAR output (OUT_BIPOLAR, N_THRES = 1): the count
// 0/1 is the bit 0/1 = -1/+1 (Y_MIN is not used). Two circuits, shared with bnn_mvtu (bnn_thres_step.sv):
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
// accepted at cycle t is valid on m_axis from cycle t+2: input register (the thresholds of the
// beat's channel fold were read ahead, every cycle, and copied beside it), then one adder per
// threshold, a popcount tree and + Y_MIN into the output register.
// THRES_SEARCH = 1: 2S-3 more registered stages (one comparator per element per level; levels >= 2
// wait a stage for their ROM's registered read), valid from cycle t+2S-1 (N_THRES = 15: t+7,
// 63: t+11), same throughput
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
    localparam int XW = IN_EW + 1;                         // input as a signed value
    // (the activation's own parameters are checked by bnn_thres_step)
    if (E < 1 || C < E || C % E != 0 || IN_EW < 1 || (IN_SIGNED != 0 && IN_SIGNED != 1)) begin : g_bad_params
        $error("bnn_threshold: need C a positive multiple of E, IN_EW >= 1 and IN_SIGNED 0 or 1 (C=%0d E=%0d IN_EW=%0d IN_SIGNED=%0d)",
               C, E, IN_EW, IN_SIGNED);
    end

    logic           adv, step, skid_valid;
    logic [CFW-1:0] cf;

    assign adv = !skid_valid;
    assign s_axis_tready = adv;
    assign step = adv && s_axis_tvalid;

    // cf_next: the channel fold of the next beat accepted, read every cycle so that the
    // activation's read register always holds the thresholds of the beat about to arrive
    logic [CFW-1:0] cf_next;
    assign cf_next = step ? ((cf == CF_LAST) ? '0 : cf + 1'b1) : cf;
    always_ff @(posedge clk) begin
        if (rst) cf <= '0;
        else cf <= cf_next;
    end

    logic [E*OUT_EW-1:0] y;         // the output beat (combinational)
    logic                y_valid;   // y holds a beat
    logic [E*IN_EW-1:0]  x1;        // the input beat, registered
    logic                v1;
    genvar p;

    always_ff @(posedge clk) begin
        if (rst) v1 <= 1'b0;
        else if (adv) v1 <= step;
        if (step) x1 <= s_axis_tdata;
    end

    // each element as a signed XW-bit value, then the shared activation (bnn_thres_step)
    logic [E*XW-1:0] xs;
    generate
        for (p = 0; p < E; p = p + 1) begin : g_ext
            if (IN_SIGNED != 0) begin : g_s
                assign xs[p*XW +: XW] = XW'($signed(x1[p*IN_EW +: IN_EW]));
            end else begin : g_u
                assign xs[p*XW +: XW] = {1'b0, x1[p*IN_EW +: IN_EW]};
            end
        end
    endgenerate

    bnn_thres_step #(.N(E), .G(CF), .X_W(XW), .N_THRES(N_THRES), .T_W(T_W), .THRES_FILE(THRES_FILE),
                     .DIR_FILE(DIR_FILE), .THRES_SEARCH(THRES_SEARCH), .OUT_EW(OUT_EW),
                     .OUT_BIPOLAR(OUT_BIPOLAR), .Y_MIN(Y_MIN)) u_act (
        .clk(clk), .rst(rst), .adv(adv), .t_rd(1'b1), .grp(cf_next), .x_valid(v1), .x(xs),
        .y_valid(y_valid), .y(y));

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
