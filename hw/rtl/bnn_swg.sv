// bnn_swg: sliding-window generator (FINN's ConvolutionInputGenerator) with a line buffer.
//
// Parameters: H, W       input rows and columns
//             C, E       channels and elements per beat (E divides C); CB = C/E beats per pixel
//             EW         bits per element
//             K, S, PAD  kernel, stride, padding on every side (PAD < K)
//             PAD_VALUE  EW-bit pattern of a padding element (bipolar -1: 0; UINT 0: 0)
//             EXTRA_ROWS line-buffer rows beyond K+S (0 unless the frame boundary must be gap-free
//                        in a PAD = 0 layer: hw/swg_model.py swg_full_rate_extra_rows)
//             READ_REGS  registers on the line buffer's read path (0, 2 or 3): with 2 the buffer's
//                        read address and enable come from registers (slot, column and channel,
//                        then the address), off the scheduler's compare-and-count path; 3 adds a
//                        register behind the buffer's read data, before the pad select (a block
//                        RAM's clock-to-out then ends at it, not at the output FIFO's write port). Cycles per frame are the
//                        same, every output beat leaves READ_REGS cycles later, the output FIFO has
//                        READ_REGS more entries. Needs W*C/E >= 4 (a released row's last reads are
//                        then still ahead of the first writes into its slot).
// Input:  the (H, W, C) map in (h, w, c) order, E elements per beat (H*W*CB beats per frame).
// Output: for each output pixel (HO = (H+2PAD-K)/S+1 rows, WO likewise, row-major) its K*K*C
//         patch in (ky, kx, c) order, E elements per beat (HO*WO*K*K*CB beats per frame).
//
// Line buffer: R = K+S+EXTRA_ROWS input rows, R*W*CB words of E*EW bits (one simple dual-port memory,
// registered read: BRAM/LUTRAM). Input row g (counted over frames) goes to slot g mod R.
// Rows are tracked by D = (complete rows written) - (first row the current output row needs);
// the input is accepted while D < R (the row being written lands in a slot no pending output
// row reads) and an output row starts once D covers every real row of its window. With R =
// K+S the S rows of the next output row load while the current one is emitted, and the
// first rows of the next frame load while the last output rows of a frame are emitted (all of
// them when R >= H - lo(HO-1) + min(H, K-PAD), which K+S covers for PAD >= 1 and K = 1), so
// frames stream back to back.
//
// Timing (no stalls): one beat per cycle on the busier side, i.e. max(H*W*CB, HO*WO*K*K*CB)
// cycles per frame in steady state: exactly so for K3 S1 PAD1, K3 S2 PAD1, K1 and with the
// EXTRA_ROWS of swg_full_rate_extra_rows; PAD = 0 layers with K > S otherwise lose up to
// min(H, K-PAD) - S + (rows no window uses) input rows per frame at the frame boundary
// (hw/swg_model.py: swg_schedule is cycle-exact, swg_cycles_per_frame). The first output beat of a
// frame needs its first min(H, K-PAD) input rows = min(H, K-PAD)*W*CB input beats and leaves
// 3 + READ_REGS cycles after the last of them is accepted. The module accepts at most
// (lo(ho) + R)*W*CB beats of a frame (counted from the frame's first beat, so it may reach
// into the next frame) before output row ho (lo(ho) = max(0, ho*S-PAD)) has been fully read
// out of the buffer: it holds at most R*W*CB input beats ahead of its output. hw/swg_model.py
// gives these numbers as functions. A (4 + READ_REGS)-entry output FIFO decouples m_axis_tready
// (no combinational path between the two streams).
module bnn_swg #(
    parameter int H = 4,
    parameter int W = 4,
    parameter int C = 2,
    parameter int E = 2,
    parameter int EW = 1,
    parameter int K = 3,
    parameter int S = 1,
    parameter int PAD = 1,
    parameter int PAD_VALUE = 0,
    parameter int EXTRA_ROWS = 0,
    parameter int READ_REGS = 0
) (
    input  logic            clk,
    input  logic            rst,
    input  logic [E*EW-1:0] s_axis_tdata,
    input  logic            s_axis_tvalid,
    output logic            s_axis_tready,
    output logic [E*EW-1:0] m_axis_tdata,
    output logic            m_axis_tvalid,
    input  logic            m_axis_tready
);
    localparam int DW = E * EW;
    localparam int CB = C / E;
    localparam int WC = W * CB;                     // words per buffered row
    localparam int R = K + S + EXTRA_ROWS;          // buffered rows
    localparam int WORDS = R * WC;
    localparam int AW = (WORDS > 1) ? $clog2(WORDS) : 1;
    localparam int HO = (H + 2 * PAD - K) / S + 1;
    localparam int WO = (W + 2 * PAD - K) / S + 1;
    localparam int MAXV = ((H > W) ? H : W) + 2 * PAD + 3 * R;
    localparam int NW = $clog2(MAXV + 1);           // width of row/column/count arithmetic
    localparam int CBW = (CB > 1) ? $clog2(CB) : 1;
    localparam int SW = $clog2(R);                  // R >= 2
    localparam int XW = (W > 1) ? $clog2(W) : 1;
    localparam int WCW = (WC > 1) ? $clog2(WC) : 1;
    localparam int ODEPTH = 4 + READ_REGS;          // output FIFO entries
    localparam int FCW = $clog2(ODEPTH + 1);

    localparam logic [NW-1:0] N_PAD = NW'(PAD);
    localparam logic [NW-1:0] N_S = NW'(S);
    localparam logic [NW-1:0] N_R = NW'(R);
    localparam logic [NW-1:0] N_2R = NW'(2 * R);
    localparam logic [NW-1:0] N_K1 = NW'(K - 1);
    localparam logic [NW-1:0] N_HPAD = NW'(H + PAD);       // first padded row below the map
    localparam logic [NW-1:0] N_WPAD = NW'(W + PAD);
    localparam logic [NW-1:0] N_LAST_VC = NW'((WO - 1) * S);
    localparam int HW = (HO > 1) ? $clog2(HO) : 1;
    localparam logic [HW-1:0] LAST_HO = HW'(HO - 1);

    // Per output row ho (window top vr = ho*S), constants of the row schedule, as tables indexed by
    // ho so that no per-cycle path computes them from vr: NEED = the window's real rows + R (the
    // row starts once dp reaches it), DELTA = the rows released when the row ends (up to the next
    // row's first real row, or to the next frame's first row), NPAD = padded rows above the window.
    function automatic logic [HO*NW-1:0] row_table(input int which);
        int vr, lo, hi, next_lo;
        row_table = '0;
        for (int h = 0; h < HO; h++) begin
            vr = h * S;
            lo = (vr > PAD) ? vr : PAD;
            hi = (vr + K - 1 < H + PAD) ? vr + K - 1 : H + PAD - 1;
            next_lo = (h == HO - 1) ? H + PAD : ((vr + S > PAD) ? vr + S : PAD);
            if (which == 0) row_table[h*NW +: NW] = NW'(hi - lo + 1 + R);
            else if (which == 1) row_table[h*NW +: NW] = NW'(next_lo - lo);
            else row_table[h*NW +: NW] = NW'(lo - vr);
        end
    endfunction
    localparam logic [HO*NW-1:0] NEED_T = row_table(0);
    localparam logic [HO*NW-1:0] DELTA_T = row_table(1);
    localparam logic [HO*NW-1:0] NPAD_T = row_table(2);
    localparam logic [CBW-1:0] LAST_CB = CBW'(CB - 1);
    localparam logic [WCW-1:0] LAST_WC = WCW'(WC - 1);
    localparam logic [AW-1:0] LAST_ADDR = AW'(WORDS - 1);
    localparam logic [AW-1:0] A_WC = AW'(WC);
    localparam logic [AW-1:0] A_CB = AW'(CB);
    localparam logic [EW-1:0] PADV = EW'(PAD_VALUE);
    localparam logic [DW-1:0] PAD_WORD = {E{PADV}};

    if (C % E != 0 || PAD >= K || S < 1 || H + 2 * PAD < K || W + 2 * PAD < K || EXTRA_ROWS < 0)
    begin : g_bad_params
        $error("bnn_swg: need E | C, PAD < K, S >= 1 and a kernel that fits (C=%0d E=%0d K=%0d S=%0d PAD=%0d H=%0d W=%0d)",
               C, E, K, S, PAD, H, W);
    end
    if ((READ_REGS != 0 && READ_REGS != 2 && READ_REGS != 3) || (READ_REGS != 0 && W * (C / E) < 4)) begin : g_bad_read_regs
        $error("bnn_swg: need READ_REGS 0, or 2 or 3 with W*C/E >= 4 (READ_REGS=%0d W=%0d C=%0d E=%0d)", READ_REGS, W, C, E);
    end

    // ---------------------------------------------------------------- line buffer
    // no_rw_check: a slot is written only once released, after its rows' reads were issued, and a
    // row is read only once complete; with READ_REGS, W*C/E >= 4 keeps the last reads of a released
    // slot ahead of the first write into it, so no read meets the write of its address (checked in
    // simulation below) and the synthesizer adds no collision bypass after the RAM (CNV_1W1A's
    // board top: the bypass LUT between Conv_5_swg's RAM and its read register, 11.18 ns)
    (* no_rw_check *) logic [DW-1:0] mem [0:WORDS-1];
    logic [DW-1:0] rd_data;
    logic [AW-1:0] wr_addr, mem_addr;
    logic wr_en, mem_en;
    /* verilator lint_off UNUSEDSIGNAL */  // the unregistered read, used with READ_REGS = 0
    logic [AW-1:0] rd_addr;
    logic rd_en;
    /* verilator lint_on UNUSEDSIGNAL */

    always_ff @(posedge clk) begin
        if (wr_en) mem[wr_addr] <= s_axis_tdata;
        if (mem_en) rd_data <= mem[mem_addr];
    end

    // dp = D + R, where D = complete rows written - first row needed by the current output row
    logic [NW-1:0] dp;

    // ---------------------------------------------------------------- write side
    logic [WCW-1:0] wr_pos;         // word within the row being written
    logic row_done;

    assign s_axis_tready = dp < N_2R;   // D < R
    assign wr_en = s_axis_tvalid && s_axis_tready;
    assign row_done = wr_en && (wr_pos == LAST_WC);

    always_ff @(posedge clk) begin
        if (wr_en) begin
            wr_addr <= (wr_addr == LAST_ADDR) ? '0 : wr_addr + 1'b1;
            wr_pos <= (wr_pos == LAST_WC) ? '0 : wr_pos + 1'b1;
        end
        if (rst) begin
            wr_addr <= '0;
            wr_pos <= '0;
        end
    end

    // ---------------------------------------------------------------- read side
    // Position in padded coordinates: the window's top row is vr = ho*S, its left column vc =
    // wo*S; padded row p is input row p-PAD. lo_slot: buffer slot of the first real row.
    logic [NW-1:0] vr, vc, ky, kx, lo_slot;
    logic [CBW-1:0] cb;
    logic [SW-1:0] slot;
    logic [XW-1:0] col_in;
    logic [NW-1:0] row, col, slot_sum, lo_slot_sum;
    logic [NW-1:0] need, delta, npad_top;   // this output row's NEED_T, DELTA_T, NPAD_T entries
    logic [HW-1:0] ho, ho_next;
    logic last_cb, last_kx, last_ky, last_wo, last_ho, row_end, real_px, row_ok, at_start;
    logic issue, rd_v, rd_pad, mem_v, mem_real;
    logic q_v;              // READ_REGS = 3: a beat in the read-data register (else 0)
    logic [DW-1:0] q_data;  // the beat the output FIFO writes when q_v (or rd_v without it)
    logic fifo_wr;
    logic [FCW-1:0] fcount;
    logic [1:0] in_flight;  // issued reads not yet in rd_v: the READ_REGS stages
    // beats that may still be issued: ODEPTH less those in flight and in the output FIFO, kept as a
    // counter so that `issue` is one compare of registers (their sum in the cycle, two adders and a
    // compare before every counter's enable and dp's adder, was the flagship's critical path at
    // 96.83 MHz and CNV_1W1A's at 103.66)
    logic [FCW-1:0] credits;
    logic pop;

    always_comb begin
        row = vr + ky;
        col = vc + kx;
        /* verilator lint_off UNSIGNED */  // PAD = 0: row >= 0 is constant
        real_px = (row >= N_PAD) && (row < N_HPAD) && (col >= N_PAD) && (col < N_WPAD);
        /* verilator lint_on UNSIGNED */
        slot_sum = lo_slot + ky - npad_top;       // valid for real rows (ky >= npad_top)
        slot = SW'((slot_sum >= N_R) ? slot_sum - N_R : slot_sum);
        col_in = XW'(col - N_PAD);
        rd_addr = AW'(slot) * A_WC + AW'(col_in) * A_CB + AW'(cb);  // READ_REGS = 0 only
        last_cb = cb == LAST_CB;
        last_kx = kx == N_K1;
        last_ky = ky == N_K1;
        last_wo = vc == N_LAST_VC;
        last_ho = ho == LAST_HO;
        row_end = last_cb && last_kx && last_ky && last_wo;
        lo_slot_sum = lo_slot + delta;
        ho_next = last_ho ? '0 : ho + 1'b1;
        // an output row starts once its window's real rows are complete; `need` and `at_start`
        // (every counter at 0) are registers, so the issue decision that enables every counter
        // is one compare deep
        row_ok = !at_start || (dp >= need);
        issue = row_ok && (credits != '0);
        rd_en = issue && real_px;
    end

    // the read of an issued beat: at once (READ_REGS 0), or through two registers
    generate
        if (READ_REGS == 0) begin : g_direct
            assign mem_en = rd_en;
            assign mem_addr = rd_addr;
            assign mem_v = issue;
            assign mem_real = real_px;
            assign in_flight = 2'd0;
        end else begin : g_piped
            logic a_v, a_real, b_v, b_real;
            logic [SW-1:0] a_slot;
            logic [XW-1:0] a_col;
            logic [CBW-1:0] a_cb;
            logic [AW-1:0] b_addr;
            always_ff @(posedge clk) begin
                a_v <= issue;
                a_real <= real_px;
                a_slot <= slot;
                a_col <= col_in;
                a_cb <= cb;
                b_v <= a_v;
                b_real <= a_real;
                b_addr <= AW'(a_slot) * A_WC + AW'(a_col) * A_CB + AW'(a_cb);
                if (rst) begin
                    a_v <= 1'b0;
                    b_v <= 1'b0;
                end
            end
            assign mem_en = b_v && b_real;
            assign mem_addr = b_addr;
            assign mem_v = b_v;
            assign mem_real = b_real;
            assign in_flight = 2'(a_v) + 2'(b_v);
        end
    endgenerate

    // the read data, padded, into the output FIFO: at once, or through a register (READ_REGS 3)
    generate
        if (READ_REGS == 3) begin : g_dreg
            // the raw read data is registered, the pad select comes after it: no logic between
            // the block RAM's clock-to-out and this register, which can sit beside the RAM
            logic [DW-1:0] q_raw;
            logic q_pad;
            always_ff @(posedge clk) begin
                q_v <= rd_v;
                q_raw <= rd_data;
                q_pad <= rd_pad;
                if (rst) q_v <= 1'b0;
            end
            assign q_data = q_pad ? PAD_WORD : q_raw;
            assign fifo_wr = q_v;
        end else begin : g_nodreg
            assign q_v = 1'b0;
            assign q_data = rd_pad ? PAD_WORD : rd_data;
            assign fifo_wr = rd_v;
        end
    endgenerate

    always_ff @(posedge clk) begin
        rd_v <= mem_v;
        rd_pad <= !mem_real;
        if (issue) begin
            if (!last_cb) cb <= cb + 1'b1;
            else begin
                cb <= '0;
                if (!last_kx) kx <= kx + 1'b1;
                else begin
                    kx <= '0;
                    if (!last_ky) ky <= ky + 1'b1;
                    else begin
                        ky <= '0;
                        if (!last_wo) vc <= vc + N_S;
                        else begin
                            vc <= '0;
                            vr <= last_ho ? '0 : vr + N_S;
                            ho <= ho_next;
                            lo_slot <= (lo_slot_sum >= N_R) ? lo_slot_sum - N_R : lo_slot_sum;
                        end
                    end
                end
            end
        end
        dp <= dp + {{(NW - 1) {1'b0}}, row_done} - ((issue && row_end) ? delta : '0);
        credits <= credits - FCW'(issue) + FCW'(pop);
        if (issue) at_start <= row_end;
        if (issue && row_end) begin
            need <= NEED_T[ho_next*NW +: NW];
            delta <= DELTA_T[ho_next*NW +: NW];
            npad_top <= NPAD_T[ho_next*NW +: NW];
        end
        if (rst) begin
            at_start <= 1'b1;
            ho <= '0;
            need <= NEED_T[0 +: NW];
            delta <= DELTA_T[0 +: NW];
            npad_top <= NPAD_T[0 +: NW];
            rd_v <= 1'b0;
            cb <= '0;
            kx <= '0;
            ky <= '0;
            vc <= '0;
            vr <= '0;
            lo_slot <= '0;
            dp <= N_R;
            credits <= FCW'(ODEPTH);
        end
    end
    assign pop = m_axis_tvalid && m_axis_tready;
`ifndef SYNTHESIS
    always_ff @(posedge clk)
        if (!rst && wr_en && mem_en && wr_addr == mem_addr)
            $error("bnn_swg: a line-buffer read meets the write of its address %0d", wr_addr);
    // the credits are what the sum would give: every issued beat is in flight, in the read
    // registers or in the output FIFO until it leaves
    always_ff @(posedge clk)
        if (!rst && 5'(credits) + 5'(fcount) + 5'(rd_v) + 5'(in_flight) + 5'(q_v) != 5'(ODEPTH))
            $error("bnn_swg: %0d credits + %0d beats held != ODEPTH %0d", credits,
                   5'(fcount) + 5'(rd_v) + 5'(in_flight) + 5'(q_v), ODEPTH);
`endif

    // ---------------------------------------------------------------- output FIFO
    bnn_out_fifo #(.W(DW), .DEPTH(ODEPTH)) u_out (
        .clk(clk), .rst(rst), .wr(fifo_wr), .wdata(q_data), .count(fcount),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready));
endmodule
