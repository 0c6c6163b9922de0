// bnn_fork: broadcast one AXI-Stream to N outputs.
//
// Parameters: W data width in bits, N number of outputs (>= 2)
// Every output delivers every input beat exactly once, in order; the outputs drain independently
// (a per-output valid bit is cleared when that output takes the beat). The input is ready when
// every output has taken, or is taking in this cycle, the registered beat. Outputs are registered:
// m_axis_tvalid depends on registers only, so no output's tready reaches another output's tvalid
// combinationally (tready -> s_axis_tready is combinational). Latency 1 cycle, full throughput
// when all outputs are ready.
// Ports: m_axis_tdata[k*W +: W], m_axis_tvalid[k], m_axis_tready[k] form output k.
module bnn_fork #(
    parameter int W = 8,
    parameter int N = 2
) (
    input  logic           clk,
    input  logic           rst,
    input  logic [W-1:0]   s_axis_tdata,
    input  logic           s_axis_tvalid,
    output logic           s_axis_tready,
    output logic [N*W-1:0] m_axis_tdata,
    output logic [N-1:0]   m_axis_tvalid,
    input  logic [N-1:0]   m_axis_tready
);
    logic [W-1:0] data;
    logic [N-1:0] pending;  // outputs that still have to take `data`
    if (W < 1 || N < 2) begin : g_bad_params
        $error("bnn_fork: need W >= 1 and N >= 2 outputs (W=%0d N=%0d)", W, N);
    end

    assign s_axis_tready = (pending & ~m_axis_tready) == '0;
    assign m_axis_tvalid = pending;
    assign m_axis_tdata = {N{data}};

    always_ff @(posedge clk) begin
        if (s_axis_tvalid && s_axis_tready) begin
            data <= s_axis_tdata;
            pending <= '1;
        end else begin
            pending <= pending & ~m_axis_tready;
        end
        if (rst) pending <= '0;
    end
endmodule
