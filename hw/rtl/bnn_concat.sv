// bnn_concat: channel concatenation of two AXI-Streams (the IR's Concat).
//
// Parameters: E   elements per beat (all ports), EW bits per element
//             C0, C1  channels per pixel of input 0 and input 1 (each a multiple of E)
// For every pixel the output carries the C0 channels of s0 followed by the C1 channels of s1:
// C0/E beats from s0, then C1/E beats from s1, repeating (a frame is any number of pixels).
// The output is registered. Latency 1 cycle, full throughput (one output beat per cycle).
module bnn_concat #(
    parameter int E = 1,
    parameter int EW = 1,
    parameter int C0 = 1,
    parameter int C1 = 1
) (
    input  logic          clk,
    input  logic          rst,
    input  logic [E*EW-1:0] s0_axis_tdata,
    input  logic          s0_axis_tvalid,
    output logic          s0_axis_tready,
    input  logic [E*EW-1:0] s1_axis_tdata,
    input  logic          s1_axis_tvalid,
    output logic          s1_axis_tready,
    output logic [E*EW-1:0] m_axis_tdata,
    output logic          m_axis_tvalid,
    input  logic          m_axis_tready
);
    localparam int B0 = C0 / E;  // beats per pixel from s0
    localparam int B = (C0 + C1) / E;  // output beats per pixel
    localparam int CW = $clog2(B);
    localparam logic [CW-1:0] FIRST1 = CW'(B0);
    localparam logic [CW-1:0] LAST = CW'(B - 1);
    if (E < 1 || EW < 1 || C0 < E || C1 < E || C0 % E != 0 || C1 % E != 0) begin : g_bad_params
        $error("bnn_concat: need E, EW >= 1 and C0, C1 positive multiples of E (E=%0d EW=%0d C0=%0d C1=%0d)", E, EW, C0, C1);
    end

    logic [CW-1:0] cnt;  // output beat within the pixel
    logic sel, room, take;

    assign sel = cnt >= FIRST1;  // 0: s0, 1: s1
    assign room = !m_axis_tvalid || m_axis_tready;
    assign s0_axis_tready = !sel && room;
    assign s1_axis_tready = sel && room;
    assign take = sel ? s1_axis_tvalid : s0_axis_tvalid;

    always_ff @(posedge clk) begin
        if (take && room) begin
            m_axis_tdata <= sel ? s1_axis_tdata : s0_axis_tdata;
            cnt <= (cnt == LAST) ? '0 : cnt + 1'b1;
        end
        if (take && room) m_axis_tvalid <= 1'b1;
        else if (m_axis_tready) m_axis_tvalid <= 1'b0;
        if (rst) begin
            cnt <= '0;
            m_axis_tvalid <= 1'b0;
        end
    end
endmodule
