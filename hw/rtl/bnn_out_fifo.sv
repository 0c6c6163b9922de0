// bnn_out_fifo: the small output FIFO of a module that cannot stop its own pipeline at once
// (bnn_swg's window reads, bnn_rmw's combine stage): it reserves room for the beats in flight by
// its `count` and pushes them without a ready.
//
// Parameters: W      data width in bits
//             DEPTH  entries (>= 2): registers (or LUTRAM) read combinationally
// `wr` pushes `wdata` (the parent guarantees room: count + beats in flight <= DEPTH); m_axis_tdata
// and m_axis_tvalid come from the registers and the count (no path from s-side to m-side within a
// cycle). `count` is the number of entries held.
module bnn_out_fifo #(
    parameter int W = 8,
    parameter int DEPTH = 4
) (
    input  logic                       clk,
    input  logic                       rst,
    input  logic                       wr,
    input  logic [W-1:0]               wdata,
    output logic [$clog2(DEPTH+1)-1:0] count,
    output logic [W-1:0]               m_axis_tdata,
    output logic                       m_axis_tvalid,
    input  logic                       m_axis_tready
);
    localparam int PW = $clog2(DEPTH);
    localparam logic [PW-1:0] LAST = PW'(DEPTH - 1);

    if (DEPTH < 2 || W < 1) begin : g_bad_params
        $error("bnn_out_fifo: need DEPTH >= 2 and W >= 1 (DEPTH=%0d W=%0d)", DEPTH, W);
    end

    logic [W-1:0] fifo [0:DEPTH-1];
    logic [PW-1:0] fw, fr;
    logic pop;

    assign m_axis_tvalid = count != '0;
    assign m_axis_tdata = fifo[fr];
    assign pop = m_axis_tvalid && m_axis_tready;

    always_ff @(posedge clk) begin
        if (wr) begin
            fifo[fw] <= wdata;
            fw <= (fw == LAST) ? '0 : fw + 1'b1;
        end
        if (pop) fr <= (fr == LAST) ? '0 : fr + 1'b1;
        if (wr && !pop) count <= count + 1'b1;
        else if (pop && !wr) count <= count - 1'b1;
        if (rst) begin
            fw <= '0;
            fr <= '0;
            count <= '0;
        end
    end
endmodule
