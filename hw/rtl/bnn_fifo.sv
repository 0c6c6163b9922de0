// bnn_fifo: first-word-fall-through AXI-Stream FIFO.
//
// Parameters: W     data width in bits
//             DEPTH entries of the storage memory (any value >= 2)
// Holds up to DEPTH+1 beats: DEPTH in a memory with a registered read port (Yosys/Vivado map it
// to BRAM or LUTRAM) and one in the output register (the read register doubles as the
// first-word-fall-through stage). s_axis_tready depends on registers only; there is no
// combinational path between the two sides. Full throughput (one beat per cycle in and out);
// a beat written into an empty FIFO appears on m_axis two cycles later.
module bnn_fifo #(
    parameter int W = 8,
    parameter int DEPTH = 16
) (
    input  logic         clk,
    input  logic         rst,
    input  logic [W-1:0] s_axis_tdata,
    input  logic         s_axis_tvalid,
    output logic         s_axis_tready,
    output logic [W-1:0] m_axis_tdata,
    output logic         m_axis_tvalid,
    input  logic         m_axis_tready
);
    localparam int AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam int CW = $clog2(DEPTH + 1);
    localparam logic [AW-1:0] LAST = AW'(DEPTH - 1);
    localparam logic [CW-1:0] FULL = CW'(DEPTH);

    logic [W-1:0] mem [0:DEPTH-1];
    logic [AW-1:0] wr_ptr, rd_ptr;
    logic [CW-1:0] count;  // beats in the memory (not counting the output register)
    logic wr, rd;

    assign s_axis_tready = count != FULL;
    assign wr = s_axis_tvalid && s_axis_tready;
    // refill the output register whenever it is empty or being emptied
    assign rd = (count != '0) && (!m_axis_tvalid || m_axis_tready);

    always_ff @(posedge clk) begin
        if (wr) mem[wr_ptr] <= s_axis_tdata;
        if (rd) m_axis_tdata <= mem[rd_ptr];
    end

    always_ff @(posedge clk) begin
        if (wr) wr_ptr <= (wr_ptr == LAST) ? '0 : wr_ptr + 1'b1;
        if (rd) rd_ptr <= (rd_ptr == LAST) ? '0 : rd_ptr + 1'b1;
        if (wr && !rd) count <= count + 1'b1;
        else if (rd && !wr) count <= count - 1'b1;
        if (rd) m_axis_tvalid <= 1'b1;
        else if (m_axis_tready) m_axis_tvalid <= 1'b0;
        if (rst) begin
            wr_ptr <= '0;
            rd_ptr <= '0;
            count <= '0;
            m_axis_tvalid <= 1'b0;
        end
    end
endmodule
