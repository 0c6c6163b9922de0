// uart_echo: test-only UART loopback (tests/test_uart_sim.py): every byte bnn_uart_rx receives
// correctly goes through a 16-entry bnn_fifo to bnn_uart_tx and back out. Bytes with a low stop bit
// or lost to an overrun are dropped by the receiver; its error pulses are left unconnected.
module uart_echo #(
    parameter int CLKS_PER_BIT = 8
) (
    input  logic clk,
    input  logic rst,
    input  logic uart_rx,
    output logic uart_tx
);
    logic [7:0] rx_tdata, tx_tdata;
    logic rx_tvalid, rx_tready, tx_tvalid, tx_tready;

    bnn_uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_rx (
        .clk, .rst, .rx(uart_rx),
        .m_axis_tdata(rx_tdata), .m_axis_tvalid(rx_tvalid), .m_axis_tready(rx_tready),
        .overrun(), .frame_err()
    );

    bnn_fifo #(.W(8), .DEPTH(16)) u_fifo (
        .clk, .rst,
        .s_axis_tdata(rx_tdata), .s_axis_tvalid(rx_tvalid), .s_axis_tready(rx_tready),
        .m_axis_tdata(tx_tdata), .m_axis_tvalid(tx_tvalid), .m_axis_tready(tx_tready)
    );

    bnn_uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_tx (
        .clk, .rst,
        .s_axis_tdata(tx_tdata), .s_axis_tvalid(tx_tvalid), .s_axis_tready(tx_tready),
        .tx(uart_tx)
    );
endmodule
