// bnn_fifo: first-word-fall-through AXI-Stream FIFO.
//
// Parameters: W       data width in bits
//             DEPTH   entries of the storage memory (any value >= 2)
//             OUT_REG 1: a two-beat flip-flop stage behind the memory's read register (for the
//                     clock): the block RAM's slow clock-to-out ends at flip-flops with no logic
//                     before them, what follows starts one LUT (the slot select) after flip-flops,
//                     and the memory's read enable depends on registers only, not on m_axis_tready
//                     (a reader's ready, through forks and joins, would otherwise reach every RAM's
//                     clock enable in the same cycle); two more beats held and one more cycle of
//                     latency
//             SLICE   1 (default): a memory deeper than 512 words is split in width into slices of
//                     the widest block-RAM port one RAM deep holds (1 bit up to 16,384 words, 2 up to
//                     8,192, 4 up to 4,096, 9 up to 2,048, 18 up to 1,024; hw/bram.py), one memory
//                     each, so that no read crosses RAMs stacked in depth and their depth mux (the
//                     tool packs one wide memory into the fewest RAMs, stacked); 0: one memory
// Holds up to DEPTH+1 beats (DEPTH+3 with OUT_REG): DEPTH in a memory with a registered read port
// (Yosys/Vivado map it to BRAM or LUTRAM) and one in the read register (which doubles as the
// first-word-fall-through stage without OUT_REG). s_axis_tready depends on registers only; there is
// no combinational path between the two sides. Full throughput (one beat per cycle in and out);
// a beat written into an empty FIFO appears on m_axis two cycles later (three with OUT_REG).
module bnn_fifo #(
    parameter int W = 8,
    parameter int DEPTH = 16,
    parameter int OUT_REG = 0,
    parameter int SLICE = 1
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

    // bits per memory slice (hw/bram.py slice_width)
    localparam int PORT_W = DEPTH <= 512 ? 36 : DEPTH <= 1024 ? 18 : DEPTH <= 2048 ? 9 : DEPTH <= 4096 ? 4 :
                            DEPTH <= 8192 ? 2 : 1;
    localparam int SW = (SLICE == 1 && PORT_W < W) ? PORT_W : W;
    localparam int NS = (W + SW - 1) / SW;

    if (DEPTH < 2 || (OUT_REG != 0 && OUT_REG != 1) || (SLICE != 0 && SLICE != 1)) begin : g_bad_params
        $error("bnn_fifo: need DEPTH >= 2, OUT_REG 0 or 1 and SLICE 0 or 1 (DEPTH=%0d OUT_REG=%0d SLICE=%0d)",
               DEPTH, OUT_REG, SLICE);
    end
    logic [AW-1:0] wr_ptr, rd_ptr;
    logic [CW-1:0] count;  // beats in the memory (not counting the read and output registers)
    logic wr, rd;
    logic [W-1:0] q;       // the memory's read register
    logic q_valid, q_take; // q holds a beat / q is emptied this cycle

    assign s_axis_tready = count != FULL;
    assign wr = s_axis_tvalid && s_axis_tready;
    // rd (the memory read): below, per output stage

    for (genvar k = 0; k < NS; k = k + 1) begin : g_slice
        localparam int KW = (k == NS - 1) ? W - k * SW : SW;
        // no_rw_check: a read never meets the write of its address (rd needs count != 0, wr needs
        // count != DEPTH), so the synthesizer adds no collision bypass between the RAM and q
        (* no_rw_check *) logic [KW-1:0] mem [0:DEPTH-1];
        always_ff @(posedge clk) begin
            if (wr) mem[wr_ptr] <= s_axis_tdata[k*SW +: KW];
            if (rd) q[k*SW +: KW] <= mem[rd_ptr];
        end
    end

    always_ff @(posedge clk) begin
        if (wr) wr_ptr <= (wr_ptr == LAST) ? '0 : wr_ptr + 1'b1;
        if (rd) rd_ptr <= (rd_ptr == LAST) ? '0 : rd_ptr + 1'b1;
        if (wr && !rd) count <= count + 1'b1;
        else if (rd && !wr) count <= count - 1'b1;
        if (rd) q_valid <= 1'b1;
        else if (q_take) q_valid <= 1'b0;
        if (rst) begin
            wr_ptr <= '0;
            rd_ptr <= '0;
            count <= '0;
            q_valid <= 1'b0;
        end
    end

    if (OUT_REG == 0) begin : g_direct  // the read register is the output (first word falls through)
        assign q_take = m_axis_tready;
        assign m_axis_tdata = q;
        assign m_axis_tvalid = q_valid;
        assign rd = (count != '0) && (!q_valid || q_take);
    end else begin : g_out_reg
        // a two-entry stage of slots written in turn (wp) and read in turn (rp): a beat leaves q
        // straight into a slot's flip-flops, with no logic between the block RAM's clock-to-out and
        // them, and the output is the slot rp points at (one LUT after flip-flops). A beat moves on
        // from q whenever the stage has room after this cycle's pop. The memory is read only while
        // that move is sure from registers alone (q empty, or a slot free): then a beat read now can
        // always leave q, and m_axis_tready reaches no RAM pin.
        logic [W-1:0] slot0, slot1;
        logic wp, rp, pop;
        logic [1:0] n;                   // beats in the slots
        assign m_axis_tvalid = n != 2'd0;
        assign m_axis_tdata = rp ? slot1 : slot0;
        assign pop = m_axis_tvalid && m_axis_tready;
        assign q_take = q_valid && (n != 2'd2 || pop);
        assign rd = (count != '0) && (!q_valid || n != 2'd2);
        always_ff @(posedge clk) begin
            if (q_take && !wp) slot0 <= q;
            if (q_take && wp) slot1 <= q;
            if (q_take) wp <= !wp;
            if (pop) rp <= !rp;
            n <= n + {1'b0, q_take} - {1'b0, pop};
            if (rst) begin
                wp <= 1'b0;
                rp <= 1'b0;
                n <= 2'd0;
            end
        end
    end
endmodule
