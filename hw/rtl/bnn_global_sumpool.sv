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
// written once per beat: read when accepted, the read data registered once more (so that the add
// starts at a flip-flop, not at a block RAM's clock-to-out), added and written back two cycles
// after the read; the two writes still in flight at the read are forwarded. Timing: one input
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
    logic [DW-1:0] rd_data, result;
    logic [AW-1:0] cb;
    logic [PW-1:0] px;
    logic accept, first, last, rd_en, wr_en, push, pop;
    logic [2:0] fcount;

    // stage B: the beat accepted in the previous cycle (its read data arriving); stage C: the one
    // before (read data registered, added and written back)
    logic b_v, b_first, b_last, c_v, c_first, c_last;
    logic [AW-1:0] b_addr, c_addr;
    logic [E*IN_EW-1:0] b_x, c_x;
    logic [DW-1:0] c_rd;
    // the writes at the last two clock edges: the one before the last coincides with stage C's
    // read (a read during a write returns the old word), the last one came after it
    logic wb1_v, wb2_v;
    logic [AW-1:0] wb1_addr, wb2_addr;
    logic [DW-1:0] wb1_data, wb2_data;

    assign s_axis_tready = (4'(fcount) + 4'(b_v && b_last) + 4'(c_v && c_last)) < 4'(ODEPTH);
    assign accept = s_axis_tvalid && s_axis_tready;
    assign first = px == '0;
    assign last = px == LAST_PX;
    assign rd_en = accept && !first;
    assign wr_en = c_v && !c_last;
    assign push = c_v && c_last;

    always_ff @(posedge clk) begin
        if (wr_en) mem[c_addr] <= result;
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
        c_v <= b_v;
        c_first <= b_first;
        c_last <= b_last;
        c_addr <= b_addr;
        c_x <= b_x;
        c_rd <= rd_data;
        wb1_v <= wr_en;
        wb1_addr <= c_addr;
        wb1_data <= result;
        wb2_v <= wb1_v;
        wb2_addr <= wb1_addr;
        wb2_data <= wb1_data;
        if (rst) begin
            cb <= '0;
            px <= '0;
            b_v <= 1'b0;
            c_v <= 1'b0;
            wb1_v <= 1'b0;
            wb2_v <= 1'b0;
        end
    end

    always_comb begin
        logic [DW-1:0] old;
        if (wb1_v && wb1_addr == c_addr) old = wb1_data;
        else if (wb2_v && wb2_addr == c_addr) old = wb2_data;
        else old = c_rd;
        for (int i = 0; i < E; i++)
            result[i*OUT_EW +: OUT_EW] = widen(c_x[i*IN_EW +: IN_EW]) + (c_first ? '0 : old[i*OUT_EW +: OUT_EW]);
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
