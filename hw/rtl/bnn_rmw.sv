// bnn_rmw: the read-modify-write pipeline of a memory of partial results, and the 4-entry output
// FIFO behind it: what bnn_pool and bnn_global_sumpool share (each combines its own way).
//
// Parameters: WORDS  partial results held (memory depth, >= 1)
//             DW     bits per word
//             XW     bits of the input beat carried to the combine
//             AW     address bits: $clog2(WORDS), at least 1 (given by the parent, checked here)
// A beat accepted with a_v (a_first: it opens its window, so nothing is read; a_last: it closes
// it, so its result goes to the output FIFO instead of the memory) is read at a_addr when
// accepted, the read data registered once more (so that the combine starts at a flip-flop, not at
// a block RAM's clock-to-out), and combined two cycles later, in stage C: c_first, c_x and
// `old` (the word, with the two writes still in flight at the read forwarded) go to the parent,
// whose combinational `result` comes back and is written to the memory at the beat's address, or
// pushed into the FIFO. `room` (registers only): the parent may accept a beat this cycle.
module bnn_rmw #(
    parameter int WORDS = 4,
    parameter int DW = 8,
    parameter int XW = 8,
    parameter int AW = 2
) (
    input  logic          clk,
    input  logic          rst,
    input  logic          a_v,
    input  logic          a_first,
    input  logic          a_last,
    input  logic [AW-1:0] a_addr,
    input  logic [XW-1:0] a_x,
    output logic          room,
    output logic          c_first,
    output logic [XW-1:0] c_x,
    output logic [DW-1:0] old,
    input  logic [DW-1:0] result,
    output logic [DW-1:0] m_axis_tdata,
    output logic          m_axis_tvalid,
    input  logic          m_axis_tready
);
    localparam int ODEPTH = 4;

    if (WORDS < 1 || AW != ((WORDS > 1) ? $clog2(WORDS) : 1) || DW < 1 || XW < 1) begin : g_bad_params
        $error("bnn_rmw: need WORDS >= 1, AW = max(1, clog2(WORDS)), DW, XW >= 1 (WORDS=%0d AW=%0d DW=%0d XW=%0d)",
               WORDS, AW, DW, XW);
    end

    // no_rw_check: a read that meets a write of its address gets that write forwarded (wb2), so the
    // RAM's data on a collision is never used and the synthesizer adds no bypass for it
    (* no_rw_check *) logic [DW-1:0] mem [0:WORDS-1];
    logic [DW-1:0] rd_data;
    logic rd_en, wr_en, push;
    logic [2:0] fcount;

    // stage B: the beat accepted in the previous cycle (its read data arriving); stage C: the one
    // before (read data registered, combined and written back)
    logic b_v, b_first, b_last, c_v, c_last;
    logic [AW-1:0] b_addr, c_addr;
    logic [XW-1:0] b_x;
    logic [DW-1:0] c_rd;
    // the writes at the last two clock edges: the one before the last coincides with stage C's
    // read (a read during a write returns the old word), the last one came after it
    logic wb1_v, hit1, hit2;
    logic [AW-1:0] wb1_addr;
    logic [DW-1:0] wb1_data, wb2_data;

    assign room = (4'(fcount) + 4'(b_v && b_last) + 4'(c_v && c_last)) < 4'(ODEPTH);
    assign rd_en = a_v && !a_first;
    assign wr_en = c_v && !c_last;
    assign push = c_v && c_last;

    always_ff @(posedge clk) begin
        if (wr_en) mem[c_addr] <= result;
        if (rd_en) rd_data <= mem[a_addr];
    end

    always_ff @(posedge clk) begin
        b_v <= a_v;
        b_first <= a_first;
        b_last <= a_last;
        b_addr <= a_addr;
        b_x <= a_x;
        c_v <= b_v;
        c_first <= b_first;
        c_last <= b_last;
        c_addr <= b_addr;
        c_x <= b_x;
        c_rd <= rd_data;
        wb1_v <= wr_en;
        wb1_addr <= c_addr;
        wb1_data <= result;
        wb2_data <= wb1_data;
        // which write in flight the beat entering stage C meets, decided a cycle ahead (stage B):
        // the one stage C writes now becomes wb1, wb1 becomes wb2, so `old`'s select is registers
        hit1 <= wr_en && c_addr == b_addr;
        hit2 <= wb1_v && wb1_addr == b_addr;
        if (rst) begin
            b_v <= 1'b0;
            c_v <= 1'b0;
            wb1_v <= 1'b0;
        end
    end

    always_comb begin
        if (hit1) old = wb1_data;
        else if (hit2) old = wb2_data;
        else old = c_rd;
    end

    // ---------------------------------------------------------------- output FIFO
    bnn_out_fifo #(.W(DW), .DEPTH(ODEPTH)) u_out (
        .clk(clk), .rst(rst), .wr(push), .wdata(result), .count(fcount),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready));
endmodule
