// bnn_label_select: (C,) -> index of the largest (LARGEST = 1) or smallest (LARGEST = 0) value;
// ties go to the lowest index (numpy argmax/argmin).
//
// Parameters: C, E        values per frame and per beat (E divides C); CB = C/E beats per frame
//             IN_EW       bits per value
//             IN_SIGNED   1: values are two's complement, 0: unsigned
//             LARGEST     1: argmax, 0: argmin
//             OUT_W       bits of the index (>= clog2(C))
// Input:  CB beats of E values per frame. Output: one beat per frame, the index in bits
//         [OUT_W-1:0], registered, leaving the cycle after the frame's last beat.
// Timing: one input beat per cycle (CB cycles per frame). The running best sits in registers;
// each beat reduces its E values with a chain of E-1 comparators. The last beat of a frame
// waits while the previous index has not been taken (s_axis_tready depends on m_axis_tready
// only on that beat).
module bnn_label_select #(
    parameter int C = 10,
    parameter int E = 2,
    parameter int IN_EW = 8,
    parameter int IN_SIGNED = 1,
    parameter int LARGEST = 1,
    parameter int OUT_W = 4
) (
    input  logic               clk,
    input  logic               rst,
    input  logic [E*IN_EW-1:0] s_axis_tdata,
    input  logic               s_axis_tvalid,
    output logic               s_axis_tready,
    output logic [OUT_W-1:0]   m_axis_tdata,
    output logic               m_axis_tvalid,
    input  logic               m_axis_tready
);
    localparam int CB = C / E;
    localparam int BW = (CB > 1) ? $clog2(CB) : 1;
    localparam logic [BW-1:0] LAST_BEAT = BW'(CB - 1);
    localparam logic [OUT_W-1:0] O_E = OUT_W'(E);

    if (C % E != 0 || (64'(1) << OUT_W) < 64'(C)) begin : g_bad_params
        $error("bnn_label_select: need E | C and 2**OUT_W >= C (C=%0d E=%0d OUT_W=%0d)", C, E, OUT_W);
    end

    // a strictly better than b; values compared as IN_EW+1-bit signed numbers
    function automatic logic better(input logic [IN_EW-1:0] a, input logic [IN_EW-1:0] b);
        logic signed [IN_EW:0] sa, sb;
        sa = {(IN_SIGNED != 0) ? a[IN_EW-1] : 1'b0, a};
        sb = {(IN_SIGNED != 0) ? b[IN_EW-1] : 1'b0, b};
        better = (LARGEST != 0) ? (sa > sb) : (sa < sb);
    endfunction

    logic [BW-1:0] beat;
    logic [IN_EW-1:0] best_v, beat_v;
    logic [OUT_W-1:0] best_i, beat_i;
    logic first, last, accept, take;

    assign first = beat == '0;
    assign last = beat == LAST_BEAT;
    assign s_axis_tready = !last || !m_axis_tvalid || m_axis_tready;
    assign accept = s_axis_tvalid && s_axis_tready;

    always_comb begin
        beat_v = s_axis_tdata[IN_EW-1:0];
        beat_i = OUT_W'(beat) * O_E;
        for (int i = 1; i < E; i++) begin
            if (better(s_axis_tdata[i*IN_EW +: IN_EW], beat_v)) begin
                beat_v = s_axis_tdata[i*IN_EW +: IN_EW];
                beat_i = OUT_W'(beat) * O_E + OUT_W'(i);
            end
        end
        take = first || better(beat_v, best_v);   // a tie keeps the earlier (lower) index
    end

    always_ff @(posedge clk) begin
        if (accept) begin
            beat <= last ? '0 : beat + 1'b1;
            if (take) begin
                best_v <= beat_v;
                best_i <= beat_i;
            end
        end
        if (accept && last) begin
            m_axis_tdata <= take ? beat_i : best_i;
            m_axis_tvalid <= 1'b1;
        end else if (m_axis_tready) m_axis_tvalid <= 1'b0;
        if (rst) begin
            beat <= '0;
            m_axis_tvalid <= 1'b0;
        end
    end
endmodule
