// bnn_ulx3s_top: the accelerator on a ULX3S board (Lattice ECP5, 25 MHz oscillator, FT231X
// USB-serial), reached over the serial link of hw/uart_link.py.
//
// Parameters: CLKS_PER_BIT  PLL clock cycles per serial bit (clock / baud rate)
// The on-board 25 MHz clock goes through the ECP5 PLL (`bnn_pll`, written per build by ecppll at
// the clock place and route allows) to the design clock. Reset: held until the PLL locks and for
// 2^16 cycles after, and while FIRE1 is pressed. LEDs: 0-3 the last label, 4-6 the last response's
// status bits (CRC, overrun, framing), 7 a heartbeat (the clock runs). wifi_gpio0 is held high so
// that the board's ESP32 does not reset the FPGA.
module bnn_ulx3s_top #(
    parameter int CLKS_PER_BIT = 25
) (
    input  logic       clk_25mhz,
    input  logic       ftdi_txd,    // the USB-serial chip's TX: the FPGA receives
    output logic       ftdi_rxd,    // the USB-serial chip's RX: the FPGA transmits
    input  logic [1:1] btn,         // FIRE1, active high
    output logic [7:0] led,
    output logic       wifi_gpio0
);
    logic clk, locked;
    bnn_pll u_pll (.clkin(clk_25mhz), .clkout0(clk), .locked(locked));

    logic [16:0] por = '0;        // power-on reset: bitstream initial value, no reset of its own
    logic [1:0] fire_sync = '0;
    logic rst;
    always_ff @(posedge clk) begin
        fire_sync <= {fire_sync[0], btn[1]};
        if (!locked || fire_sync[1]) por <= '0;
        else if (!por[16]) por <= por + 1'b1;
    end
    assign rst = !por[16];

    logic [7:0] last_label;
    logic [2:0] last_status;
    bnn_uart_top #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_link (
        .clk, .rst, .uart_rx(ftdi_txd), .uart_tx(ftdi_rxd), .last_label, .last_status);

    logic [25:0] beat = '0;
    always_ff @(posedge clk) beat <= beat + 1'b1;

    assign led = {beat[25], last_status, last_label[3:0]};
    assign wifi_gpio0 = 1'b1;
endmodule
