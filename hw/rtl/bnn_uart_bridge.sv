// bnn_uart_bridge: the framed byte protocol of an open bitstream's host link (hw/uart_link.py),
// between a UART's byte streams and the accelerator's pixel, score and label streams.
//
// Parameters: N_BYTES   pixel bytes per frame (the accelerator's input, (h, w, c) order)
//             IN_E      bytes per accelerator input beat (N_BYTES a multiple of it)
//             N_SCORES  class scores per frame; SCORE_E scores per score beat, SCORE_EW bits each
//                       (two's complement), sent as ceil(SCORE_EW/8) little-endian bytes
//             LABEL_W   bits of the label (<= 8)
// Request  (s_axis):  0xA5 | N_BYTES pixels | CRC-8 of the pixels
// Response (m_axis):  0x5A | status | label | scores | CRC-8 of the bytes after 0x5A
// CRC-8: polynomial 0x07, initial value 0 (CRC-8/SMBUS). Bytes other than 0xA5 between frames are
// ignored. Pixels go on to m_pix_axis as they arrive (a frame is never buffered whole), so a bad CRC
// still sends the frame through the accelerator and keeps it aligned; the response then carries
// status bit 0. Status bit 1: `err_overrun` pulsed during the frame (a byte was lost before the
// bridge), bit 2: `err_frame` (a low stop bit). One frame at a time: the next request's bytes wait
// (in the receive FIFO) until the response has been handed to m_axis.
// Cycles: one request byte per cycle when the accelerator keeps up; the response leaves one byte per
// cycle once the frame's CRC, scores and label have all arrived.
module bnn_uart_bridge #(
    parameter int N_BYTES = 3072,
    parameter int IN_E = 3,
    parameter int N_SCORES = 10,
    parameter int SCORE_E = 1,
    parameter int SCORE_EW = 16,
    parameter int LABEL_W = 4
) (
    input  logic                        clk,
    input  logic                        rst,
    input  logic [7:0]                  s_axis_tdata,
    input  logic                        s_axis_tvalid,
    output logic                        s_axis_tready,
    output logic [7:0]                  m_axis_tdata,
    output logic                        m_axis_tvalid,
    input  logic                        m_axis_tready,
    output logic [IN_E*8-1:0]           m_pix_axis_tdata,
    output logic                        m_pix_axis_tvalid,
    input  logic                        m_pix_axis_tready,
    input  logic [SCORE_E*SCORE_EW-1:0] s_score_axis_tdata,
    input  logic                        s_score_axis_tvalid,
    output logic                        s_score_axis_tready,
    input  logic [LABEL_W-1:0]          s_label_axis_tdata,
    input  logic                        s_label_axis_tvalid,
    output logic                        s_label_axis_tready,
    input  logic                        err_overrun,
    input  logic                        err_frame,
    output logic [7:0]                  last_label,
    output logic [2:0]                  last_status
);
    if (N_BYTES < 1 || IN_E < 1 || N_BYTES % IN_E != 0) begin : g_bad_bytes
        $error("bnn_uart_bridge: N_BYTES = %0d is not a positive multiple of IN_E = %0d", N_BYTES, IN_E);
    end
    if (N_SCORES < 1 || SCORE_E < 1 || N_SCORES % SCORE_E != 0) begin : g_bad_scores
        $error("bnn_uart_bridge: N_SCORES = %0d is not a positive multiple of SCORE_E = %0d", N_SCORES, SCORE_E);
    end
    if (SCORE_EW < 1 || SCORE_EW > 64) begin : g_bad_score_width
        $error("bnn_uart_bridge: SCORE_EW = %0d; scores of 1 to 64 bits are supported", SCORE_EW);
    end
    if (LABEL_W < 1 || LABEL_W > 8) begin : g_bad_label
        $error("bnn_uart_bridge: LABEL_W = %0d does not fit the response's label byte", LABEL_W);
    end

    localparam int SB = (SCORE_EW + 7) / 8;              // bytes per score
    localparam int SCORE_BEATS = N_SCORES / SCORE_E;
    localparam int RESP_LEN = 4 + N_SCORES * SB;
    localparam int NW = $clog2(N_BYTES + 1);
    localparam int EW = $clog2(IN_E + 1);
    localparam int BW = $clog2(SCORE_BEATS + 1);
    localparam int RW = $clog2(RESP_LEN + 1);
    localparam logic [7:0] REQ_SYNC = 8'hA5, RESP_SYNC = 8'h5A;

    function automatic logic [7:0] crc8(input logic [7:0] crc, input logic [7:0] data);
        logic [7:0] x;
        x = crc ^ data;
        for (int i = 0; i < 8; i++) x = x[7] ? ((x << 1) ^ 8'h07) : (x << 1);
        crc8 = x;
    endfunction

    // ---- request: sync, pixels (packed IN_E to a beat), CRC ----
    typedef enum logic [1:0] {S_IDLE, S_PIX, S_CRC, S_WAIT} rx_state_t;
    rx_state_t state;
    logic [NW-1:0] n_seen;
    logic [EW-1:0] n_packed;
    logic [7:0] rx_crc;
    logic crc_bad, err_ovr, err_frm;
    logic take;

    always_comb begin
        case (state)
            S_PIX:   s_axis_tready = !m_pix_axis_tvalid || m_pix_axis_tready;
            S_WAIT:  s_axis_tready = 1'b0;
            default: s_axis_tready = 1'b1;
        endcase
    end
    assign take = s_axis_tvalid && s_axis_tready;

    logic [IN_E*8-1:0] pix_next;
    generate
        if (IN_E == 1) begin : g_one
            assign pix_next = s_axis_tdata;
        end else begin : g_pack  // the first byte ends in the low element
            assign pix_next = {s_axis_tdata, m_pix_axis_tdata[IN_E*8-1:8]};
        end
    endgenerate

    logic resp_done;

    always_ff @(posedge clk) begin
        if (m_pix_axis_tready) m_pix_axis_tvalid <= 1'b0;
        if (err_overrun) err_ovr <= 1'b1;
        if (err_frame) err_frm <= 1'b1;
        case (state)
            S_IDLE: if (take && s_axis_tdata == REQ_SYNC) begin
                state <= S_PIX;
                n_seen <= '0;
                n_packed <= '0;
                rx_crc <= '0;
                err_ovr <= err_overrun;   // errors count from the frame's sync byte on
                err_frm <= err_frame;
            end
            S_PIX: if (take) begin
                m_pix_axis_tdata <= pix_next;
                rx_crc <= crc8(rx_crc, s_axis_tdata);
                n_seen <= n_seen + 1'b1;
                if (n_packed == EW'(IN_E - 1)) begin
                    n_packed <= '0;
                    m_pix_axis_tvalid <= 1'b1;
                end else begin
                    n_packed <= n_packed + 1'b1;
                end
                if (n_seen == NW'(N_BYTES - 1)) state <= S_CRC;
            end
            S_CRC: if (take) begin
                crc_bad <= s_axis_tdata != rx_crc;
                state <= S_WAIT;
            end
            S_WAIT: if (resp_done) state <= S_IDLE;
        endcase
        if (rst) begin
            state <= S_IDLE;
            m_pix_axis_tvalid <= 1'b0;
            err_ovr <= 1'b0;
            err_frm <= 1'b0;
            crc_bad <= 1'b0;
        end
    end

    // ---- results: scores (first beat ends lowest) and label ----
    logic [N_SCORES*SCORE_EW-1:0] scores;
    logic [BW-1:0] n_beats;
    logic scores_full, label_full;
    logic [LABEL_W-1:0] label;

    assign s_score_axis_tready = !scores_full;
    assign s_label_axis_tready = !label_full;

    generate
        if (SCORE_BEATS == 1) begin : g_one_beat
            always_ff @(posedge clk)
                if (s_score_axis_tvalid && !scores_full) scores <= s_score_axis_tdata;
        end else begin : g_beats
            always_ff @(posedge clk)
                if (s_score_axis_tvalid && !scores_full)
                    scores <= {s_score_axis_tdata, scores[N_SCORES*SCORE_EW-1:SCORE_E*SCORE_EW]};
        end
    endgenerate

    always_ff @(posedge clk) begin
        if (s_score_axis_tvalid && !scores_full) begin
            n_beats <= n_beats + 1'b1;
            if (n_beats == BW'(SCORE_BEATS - 1)) scores_full <= 1'b1;
        end
        if (s_label_axis_tvalid && !label_full) begin
            label <= s_label_axis_tdata;
            label_full <= 1'b1;
        end
        if (resp_done) begin
            scores_full <= 1'b0;
            label_full <= 1'b0;
            n_beats <= '0;
        end
        if (rst) begin
            scores_full <= 1'b0;
            label_full <= 1'b0;
            n_beats <= '0;
        end
    end

    // ---- response: one byte per cycle into the output register ----
    logic sending;
    logic [RW-1:0] idx;
    logic [7:0] tx_crc, next_byte;
    logic [N_SCORES*SB*8-1:0] score_bytes;   // sign-extended scores, shifted out a byte at a time
    logic [N_SCORES*SB*8-1:0] score_ext;
    logic [2:0] status;
    logic load;

    assign status = {err_frm, err_ovr, crc_bad};
    generate
        for (genvar i = 0; i < N_SCORES; i++) begin : g_ext
            assign score_ext[i*SB*8 +: SB*8] = (SB * 8)'($signed(scores[i*SCORE_EW +: SCORE_EW]));
        end
    endgenerate

    always_comb begin
        if (idx == '0) next_byte = RESP_SYNC;
        else if (idx == RW'(1)) next_byte = {5'b0, status};
        else if (idx == RW'(2)) next_byte = 8'(label);
        else if (idx == RW'(RESP_LEN - 1)) next_byte = tx_crc;
        else next_byte = score_bytes[7:0];
    end

    assign load = sending && (!m_axis_tvalid || m_axis_tready);
    assign resp_done = load && idx == RW'(RESP_LEN - 1);

    always_ff @(posedge clk) begin
        if (m_axis_tready) m_axis_tvalid <= 1'b0;
        if (!sending && state == S_WAIT && scores_full && label_full) begin
            sending <= 1'b1;
            idx <= '0;
            tx_crc <= '0;
            score_bytes <= score_ext;
        end
        if (load) begin
            m_axis_tdata <= next_byte;
            m_axis_tvalid <= 1'b1;
            idx <= idx + 1'b1;
            if (idx != '0) tx_crc <= crc8(tx_crc, next_byte);
            if (idx > RW'(2)) score_bytes <= score_bytes >> 8;
            if (resp_done) begin
                sending <= 1'b0;
                last_label <= 8'(label);
                last_status <= status;
            end
        end
        if (rst) begin
            sending <= 1'b0;
            m_axis_tvalid <= 1'b0;
            last_label <= '0;
            last_status <= '0;
        end
    end
endmodule
