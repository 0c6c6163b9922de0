// bnn_uart_tx: UART transmitter, 8N1, LSB first.
//
// Parameters: CLKS_PER_BIT  clock cycles per bit (clock / baud rate, >= 2)
// Takes one byte from s_axis (AXI-Stream, 8 bits) whenever the line is idle and sends start bit,
// 8 data bits and stop bit; `tx` is a register (no glitches on the pin) and idles high.
// Cycles: 10 * CLKS_PER_BIT per byte; the next byte is taken in the stop bit's last cycle, so
// back-to-back bytes follow without a gap.
module bnn_uart_tx #(
    parameter int CLKS_PER_BIT = 217
) (
    input  logic       clk,
    input  logic       rst,
    input  logic [7:0] s_axis_tdata,
    input  logic       s_axis_tvalid,
    output logic       s_axis_tready,
    output logic       tx
);
    if (CLKS_PER_BIT < 2) begin : g_bad_params
        $error("bnn_uart_tx: CLKS_PER_BIT = %0d; at least 2 clock cycles per bit are needed", CLKS_PER_BIT);
    end

    localparam int CW = $clog2(CLKS_PER_BIT + 1);
    localparam logic [CW-1:0] FULL_BIT = CW'(CLKS_PER_BIT - 1);

    logic busy;
    logic [CW-1:0] timer;
    logic [3:0] bits_left;
    logic [8:0] shift;  // data bits then the stop bit, shifted out LSB first

    logic last_cycle;  // the stop bit's last cycle: the line is free for the next start bit
    assign last_cycle = busy && timer == '0 && bits_left == '0;
    assign s_axis_tready = !busy || last_cycle;

    always_ff @(posedge clk) begin
        if (!busy || last_cycle) begin
            busy <= 1'b0;
            if (s_axis_tvalid) begin
                busy <= 1'b1;
                tx <= 1'b0;                      // start bit
                shift <= {1'b1, s_axis_tdata};
                bits_left <= 4'd9;
                timer <= FULL_BIT;
            end
        end else if (timer != '0) begin
            timer <= timer - 1'b1;
        end else begin
            tx <= shift[0];
            shift <= {1'b1, shift[8:1]};
            bits_left <= bits_left - 1'b1;
            timer <= FULL_BIT;
        end
        if (rst) begin
            busy <= 1'b0;
            tx <= 1'b1;
        end
    end
endmodule
