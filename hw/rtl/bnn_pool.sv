// bnn_pool: MaxPool / SumPool with kernel K = stride K, no padding.
//
// Parameters: H, W         input rows and columns
//             C, E         channels and elements per beat (E divides C); CB = C/E beats per pixel
//             IN_EW        bits per input element
//             OUT_EW       bits per output element (>= IN_EW; = IN_EW for the max modes)
//             MODE         0: max (signed, or unsigned with IN_SIGNED = 0)
//                          1: max of bipolar bits = OR (IN_EW = OUT_EW = 1)
//                          2: sum (signed, or unsigned with IN_SIGNED = 0), OUT_EW-bit two's complement
//                          3: sum of bipolar bits (1 = +1, 0 = -1), OUT_EW-bit two's complement
//             K            window = stride
//             IN_SIGNED    1: input elements are two's complement (modes 0 and 2)
// Input:  (H, W, C) in (h, w, c) order, E elements per beat.
// Output: (HO, WO, C) with HO = floor(H/K) = floor((H-K)/K)+1, WO likewise, E results per beat.
//         Trailing rows/columns that do not fill a window are consumed and dropped.
//
// Buffer: one output row of partial results, WO*CB words of E*OUT_EW bits (memory with a
// registered read port: LUTRAM/BRAM). Every beat does a read-modify-write of its window's
// partial result through bnn_rmw: read when accepted, the read data registered once more (so that
// the combine starts at a flip-flop, not at a block RAM's clock-to-out), combined and written back
// two cycles after the read, the two writes still in flight forwarded. The last beat of a window
// goes to a 4-entry output FIFO instead. Timing: one input beat per cycle (H*W*CB cycles
// per frame); a result leaves 3 cycles after the last beat of its window. s_axis_tready depends
// on registers only (it drops when the output FIFO may fill).
module bnn_pool #(
    parameter int H = 4,
    parameter int W = 4,
    parameter int C = 2,
    parameter int E = 2,
    parameter int IN_EW = 1,
    parameter int OUT_EW = 1,
    parameter int MODE = 1,
    parameter int K = 2,
    parameter int IN_SIGNED = 1
) (
    input  logic                clk,
    input  logic                rst,
    input  logic [E*IN_EW-1:0]  s_axis_tdata,
    input  logic                s_axis_tvalid,
    output logic                s_axis_tready,
    output logic [E*OUT_EW-1:0] m_axis_tdata,
    output logic                m_axis_tvalid,
    input  logic                m_axis_tready
);
    localparam int DW = E * OUT_EW;
    localparam int CB = C / E;
    localparam int HO = H / K;
    localparam int WO = W / K;
    localparam int WORDS = WO * CB;
    localparam int AW = (WORDS > 1) ? $clog2(WORDS) : 1;
    localparam int MAXV = ((H > W) ? H : W) + K + 1;
    localparam int NW = $clog2(MAXV + 1);
    localparam int CBW = (CB > 1) ? $clog2(CB) : 1;

    localparam logic [NW-1:0] N_K1 = NW'(K - 1);
    localparam logic [NW-1:0] N_H1 = NW'(H - 1);
    localparam logic [NW-1:0] N_W1 = NW'(W - 1);
    localparam logic [NW-1:0] N_HO = NW'(HO);
    localparam logic [NW-1:0] N_WO = NW'(WO);
    localparam logic [CBW-1:0] LAST_CB = CBW'(CB - 1);
    localparam logic [AW-1:0] A_CB1 = AW'(CB - 1);

    if (C % E != 0 || H < K || W < K || MODE < 0 || MODE > 3 || OUT_EW < IN_EW
        || ((MODE == 1 || MODE == 3) && IN_EW != 1) || (MODE == 1 && OUT_EW != 1)
        || (MODE == 0 && OUT_EW != IN_EW)) begin : g_bad_params
        $error("bnn_pool: need E | C, K <= H, W, MODE 0..3, OUT_EW >= IN_EW (= for max), 1-bit bipolar (MODE=%0d IN_EW=%0d OUT_EW=%0d)",
               MODE, IN_EW, OUT_EW);
    end

    // one input element widened to OUT_EW bits
    function automatic logic [OUT_EW-1:0] widen(input logic [IN_EW-1:0] v);
        /* verilator lint_off UNUSEDSIGNAL */  // t[IN_EW] is dropped when OUT_EW = IN_EW
        logic signed [IN_EW:0] t;
        /* verilator lint_on UNUSEDSIGNAL */
        t = {(IN_SIGNED != 0) ? v[IN_EW-1] : 1'b0, v};
        widen = (MODE == 3) ? (v[0] ? OUT_EW'(1) : '1) : OUT_EW'(t);   // mode 3: +1 / -1
    endfunction

    // ---------------------------------------------------------------- input position
    logic [NW-1:0] h, w, ky, kx, oh, ow;
    logic [CBW-1:0] cb;
    logic [AW-1:0] a_addr;
    logic accept, keep, first, last, room, c_first;
    logic [E*IN_EW-1:0] c_x;
    logic [DW-1:0] old, result;

    assign s_axis_tready = room;
    assign accept = s_axis_tvalid && s_axis_tready;
    assign keep = (oh < N_HO) && (ow < N_WO);
    assign first = (ky == '0) && (kx == '0);
    assign last = (ky == N_K1) && (kx == N_K1);

    // a_addr = ow*CB + cb (mod 2^AW; only read while keep, where it is < WORDS), kept as a counter
    // beside them: no multiply-add between the counters and the memory's address
    always_ff @(posedge clk) begin
        if (accept) begin
            if (cb != LAST_CB) begin
                cb <= cb + 1'b1;
                a_addr <= a_addr + 1'b1;
            end else begin
                cb <= '0;
                if (w != N_W1) begin
                    w <= w + 1'b1;
                    kx <= (kx == N_K1) ? '0 : kx + 1'b1;
                    if (kx == N_K1) ow <= ow + 1'b1;
                    a_addr <= (kx == N_K1) ? a_addr + 1'b1 : a_addr - A_CB1;   // next pixel's window, or back
                end else begin
                    w <= '0;
                    kx <= '0;
                    ow <= '0;
                    a_addr <= '0;
                    if (h != N_H1) begin
                        h <= h + 1'b1;
                        ky <= (ky == N_K1) ? '0 : ky + 1'b1;
                        if (ky == N_K1) oh <= oh + 1'b1;
                    end else begin
                        h <= '0;
                        ky <= '0;
                        oh <= '0;
                    end
                end
            end
        end
        if (rst) begin
            cb <= '0;
            a_addr <= '0;
            w <= '0;
            kx <= '0;
            ow <= '0;
            h <= '0;
            ky <= '0;
            oh <= '0;
        end
    end

    // ---------------------------------------------------------------- partial results (bnn_rmw.sv)
    bnn_rmw #(.WORDS(WORDS), .DW(DW), .XW(E*IN_EW), .AW(AW)) u_rmw (
        .clk(clk), .rst(rst), .a_v(accept && keep), .a_first(first), .a_last(last), .a_addr(a_addr),
        .a_x(s_axis_tdata), .room(room), .c_first(c_first), .c_x(c_x), .old(old), .result(result),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready));

    // ---------------------------------------------------------------- combine
    always_comb begin
        for (int i = 0; i < E; i++) begin : elem
            logic [OUT_EW-1:0] x, o;
            x = widen(c_x[i*IN_EW +: IN_EW]);
            o = old[i*OUT_EW +: OUT_EW];
            if (c_first) result[i*OUT_EW +: OUT_EW] = x;
            else if (MODE == 1) result[i*OUT_EW +: OUT_EW] = o | x;
            else if (MODE == 0 && IN_SIGNED != 0)
                result[i*OUT_EW +: OUT_EW] = ($signed(x) > $signed(o)) ? x : o;
            else if (MODE == 0) result[i*OUT_EW +: OUT_EW] = (x > o) ? x : o;
            else result[i*OUT_EW +: OUT_EW] = o + x;
        end
    end
endmodule
