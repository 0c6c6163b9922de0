// bnn_uart_rx: UART receiver, 8 data bits, no parity, 1 stop bit (8N1), LSB first.
//
// Parameters: CLKS_PER_BIT  clock cycles per bit (clock / baud rate, >= 4)
// The line passes a two-register synchronizer (it comes from another clock domain), a falling
// edge starts a byte, each bit is sampled in its middle (the start bit again, so a glitch shorter
// than half a bit is ignored). A byte leaves on m_axis (AXI-Stream, 8 bits) and is held until it is
// taken; a UART cannot wait, so a byte that completes while the previous one is still held is
// lost and `overrun` pulses for one cycle. A low stop bit drops the byte and pulses `frame_err`; a
// start bit sent right after it has no falling edge, so the line is then taken for one (checked in
// the next bit's middle) unless it goes high (idle) first.
// Cycles: a byte is on m_axis 9.5 bit times after its start edge (+2 synchronizer cycles).
module bnn_uart_rx #(
    parameter int CLKS_PER_BIT = 217
) (
    input  logic       clk,
    input  logic       rst,
    input  logic       rx,
    output logic [7:0] m_axis_tdata,
    output logic       m_axis_tvalid,
    input  logic       m_axis_tready,
    output logic       overrun,
    output logic       frame_err
);
    if (CLKS_PER_BIT < 4) begin : g_bad_params
        $error("bnn_uart_rx: CLKS_PER_BIT = %0d; at least 4 clock cycles per bit are needed", CLKS_PER_BIT);
    end

    localparam int CW = $clog2(CLKS_PER_BIT + 1);
    localparam logic [CW-1:0] FULL_BIT = CW'(CLKS_PER_BIT - 1);
    localparam logic [CW-1:0] HALF_BIT = CW'(CLKS_PER_BIT / 2 - 1);

    logic rx_meta, rx_sync;
    logic busy;
    logic resync;  // after a low stop bit: in what may be a start bit without an edge
    logic [CW-1:0] timer;
    logic [3:0] bit_idx;  // 0 start bit, 1..8 data, 9 stop bit
    logic [7:0] shift;

    always_ff @(posedge clk) begin
        rx_meta <= rx;
        rx_sync <= rx_meta;
        overrun <= 1'b0;
        frame_err <= 1'b0;
        if (m_axis_tready) m_axis_tvalid <= 1'b0;
        if (!busy) begin
            if (!rx_sync) begin  // start edge: wait half a bit, then check the start bit again
                busy <= 1'b1;
                resync <= 1'b0;
                timer <= HALF_BIT;
                bit_idx <= '0;
            end
        end else if (timer != '0) begin
            timer <= timer - 1'b1;
            if (resync && rx_sync) busy <= 1'b0;        // idle after all: wait for a real start edge
        end else begin
            timer <= FULL_BIT;
            bit_idx <= bit_idx + 1'b1;
            if (bit_idx == 4'd0) begin
                resync <= 1'b0;
                if (rx_sync) busy <= 1'b0;               // a glitch, not a start bit
            end else if (bit_idx != 4'd9) begin
                shift <= {rx_sync, shift[7:1]};          // LSB first
            end else begin
                busy <= 1'b0;
                if (!rx_sync) begin
                    frame_err <= 1'b1;
                    busy <= 1'b1;                        // the next start bit may follow at once:
                    resync <= 1'b1;                      // check the middle of the next bit
                    bit_idx <= '0;
                end else if (m_axis_tvalid && !m_axis_tready) begin
                    overrun <= 1'b1;                     // the held byte was not taken in time
                end else begin
                    m_axis_tdata <= shift;
                    m_axis_tvalid <= 1'b1;
                end
            end
        end
        if (rst) begin
            rx_meta <= 1'b1;
            rx_sync <= 1'b1;
            busy <= 1'b0;
            m_axis_tvalid <= 1'b0;
            overrun <= 1'b0;
            frame_err <= 1'b0;
        end
    end
endmodule
