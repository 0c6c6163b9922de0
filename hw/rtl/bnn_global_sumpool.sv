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
// Accumulators: CB words of E*OUT_EW bits (memory with a registered read port), read-modify-
// written once per beat (read when accepted, written back the next cycle; a write one cycle
// before a read of the same word is forwarded). Timing: one input beat per cycle (PIXELS*CB
// cycles per frame); a sum leaves 2 cycles after its last input beat; a 4-entry output FIFO
// absorbs output stalls, s_axis_tready depends on registers only.
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
    localparam int ODEPTH = 4;
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

    logic [DW-1:0] mem [0:CB-1];
    logic [DW-1:0] rd_data, result, old;
    logic [AW-1:0] cb;
    logic [PW-1:0] px;
    logic accept, first, last, rd_en, wr_en, push, pop;
    logic b_v, b_first, b_last;
    logic [AW-1:0] b_addr;
    logic [E*IN_EW-1:0] b_x;
    logic wb_v;
    logic [AW-1:0] wb_addr;
    logic [DW-1:0] wb_data;
    logic [2:0] fcount;

    assign s_axis_tready = ({1'b0, fcount} + {3'b0, b_v && b_last}) < 4'(ODEPTH);
    assign accept = s_axis_tvalid && s_axis_tready;
    assign first = px == '0;
    assign last = px == LAST_PX;
    assign rd_en = accept && !first;
    assign wr_en = b_v && !b_last;
    assign push = b_v && b_last;

    always_ff @(posedge clk) begin
        if (wr_en) mem[b_addr] <= result;
        if (rd_en) rd_data <= mem[cb];
    end

    always_ff @(posedge clk) begin
        if (accept) begin
            cb <= (cb == LAST_CB) ? '0 : cb + 1'b1;
            if (cb == LAST_CB) px <= last ? '0 : px + 1'b1;
        end
        b_v <= accept;
        b_first <= first;
        b_last <= last;
        b_addr <= cb;
        b_x <= s_axis_tdata;
        wb_v <= wr_en;
        wb_addr <= b_addr;
        wb_data <= result;
        if (rst) begin
            cb <= '0;
            px <= '0;
            b_v <= 1'b0;
            wb_v <= 1'b0;
        end
    end

    always_comb begin
        old = (wb_v && wb_addr == b_addr) ? wb_data : rd_data;
        for (int i = 0; i < E; i++)
            result[i*OUT_EW +: OUT_EW] = widen(b_x[i*IN_EW +: IN_EW]) + (b_first ? '0 : old[i*OUT_EW +: OUT_EW]);
    end

    // ---------------------------------------------------------------- output FIFO
    logic [DW-1:0] fifo [0:ODEPTH-1];
    logic [1:0] fw, fr;

    assign m_axis_tvalid = fcount != '0;
    assign m_axis_tdata = fifo[fr];
    assign pop = m_axis_tvalid && m_axis_tready;

    always_ff @(posedge clk) begin
        if (push) begin
            fifo[fw] <= result;
            fw <= fw + 1'b1;
        end
        if (pop) fr <= fr + 1'b1;
        if (push && !pop) fcount <= fcount + 1'b1;
        else if (pop && !push) fcount <= fcount - 1'b1;
        if (rst) begin
            fw <= '0;
            fr <= '0;
            fcount <= '0;
        end
    end
endmodule
