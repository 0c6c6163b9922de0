// bnn_global_sumpool: (H, W, C) -> (C,) sum of every channel over all pixels.
//
// Parameters: PIXELS      H*W
//             C, E        channels and elements per beat (E divides C); CB = C/E beats per pixel
//             IN_EW       bits per input element
//             OUT_EW      bits per sum (two's complement, >= IN_EW)
//             IN_SIGNED   1: input elements are two's complement, 0: unsigned
//             BIPOLAR     1: 1-bit input elements, 1 = +1 and 0 = -1 (IN_EW = 1)
// Input:  PIXELS*CB beats per frame in (pixel, c) order, E elements per beat.
// Output: CB beats of E sums per frame; beat cb leaves as the last pixel's beat cb is added.
//
// Accumulators: CB words of E*OUT_EW bits, read-modify-written once per beat through bnn_rmw (read
// when accepted, the read data registered once more, added and written back two cycles after the
// read, the two writes still in flight forwarded). Timing: one input
// beat per cycle (PIXELS*CB cycles per frame); a sum leaves 3 cycles after its last input beat;
// a 4-entry output FIFO absorbs output stalls, s_axis_tready depends on registers only.
module bnn_global_sumpool #(
    parameter int PIXELS = 4,
    parameter int C = 2,
    parameter int E = 2,
    parameter int IN_EW = 4,
    parameter int OUT_EW = 8,
    parameter int IN_SIGNED = 1,
    parameter int BIPOLAR = 0
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
    localparam int AW = (CB > 1) ? $clog2(CB) : 1;
    localparam int PW = (PIXELS > 1) ? $clog2(PIXELS) : 1;
    localparam logic [AW-1:0] LAST_CB = AW'(CB - 1);
    localparam logic [PW-1:0] LAST_PX = PW'(PIXELS - 1);

    if (C % E != 0 || PIXELS < 1 || OUT_EW < IN_EW || (BIPOLAR != 0 && IN_EW != 1)) begin : g_bad_params
        $error("bnn_global_sumpool: need E | C, PIXELS >= 1, OUT_EW >= IN_EW, IN_EW = 1 when BIPOLAR");
    end

    function automatic logic [OUT_EW-1:0] widen(input logic [IN_EW-1:0] v);
        /* verilator lint_off UNUSEDSIGNAL */  // t[IN_EW] is dropped when OUT_EW = IN_EW
        logic signed [IN_EW:0] t;
        /* verilator lint_on UNUSEDSIGNAL */
        t = {(IN_SIGNED != 0) ? v[IN_EW-1] : 1'b0, v};
        widen = (BIPOLAR != 0) ? (v[0] ? OUT_EW'(1) : '1) : OUT_EW'(t);
    endfunction

    logic [DW-1:0] result, old;
    logic [AW-1:0] cb;
    logic [PW-1:0] px;
    logic accept, first, last, room, c_first;
    logic [E*IN_EW-1:0] c_x;

    assign s_axis_tready = room;
    assign accept = s_axis_tvalid && s_axis_tready;
    assign first = px == '0;
    assign last = px == LAST_PX;

    always_ff @(posedge clk) begin
        if (accept) begin
            cb <= (cb == LAST_CB) ? '0 : cb + 1'b1;
            if (cb == LAST_CB) px <= last ? '0 : px + 1'b1;
        end
        if (rst) begin
            cb <= '0;
            px <= '0;
        end
    end

    // the accumulators' read-modify-write and the output FIFO (bnn_rmw.sv)
    bnn_rmw #(.WORDS(CB), .DW(DW), .XW(E*IN_EW), .AW(AW)) u_rmw (
        .clk(clk), .rst(rst), .a_v(accept), .a_first(first), .a_last(last), .a_addr(cb), .a_x(s_axis_tdata),
        .room(room), .c_first(c_first), .c_x(c_x), .old(old), .result(result),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready));

    always_comb begin
        for (int i = 0; i < E; i++)
            result[i*OUT_EW +: OUT_EW] = widen(c_x[i*IN_EW +: IN_EW]) + (c_first ? '0 : old[i*OUT_EW +: OUT_EW]);
    end
endmodule
