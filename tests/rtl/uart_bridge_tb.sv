// Test wrapper of bnn_uart_bridge for the AXI-Stream harness (hw/sim.py): the error inputs are
// plain wires there, so this ties them low (the bit-level UART tests drive real errors).
module uart_bridge_tb #(
    parameter int N_BYTES = 12,
    parameter int IN_E = 3,
    parameter int N_SCORES = 4,
    parameter int SCORE_E = 2,
    parameter int SCORE_EW = 10,
    parameter int LABEL_W = 2
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
    output logic                        s_label_axis_tready
);
    logic [7:0] last_label;
    logic [2:0] last_status;
    bnn_uart_bridge #(.N_BYTES(N_BYTES), .IN_E(IN_E), .N_SCORES(N_SCORES), .SCORE_E(SCORE_E),
                      .SCORE_EW(SCORE_EW), .LABEL_W(LABEL_W)) u_bridge (
        .clk, .rst, .s_axis_tdata, .s_axis_tvalid, .s_axis_tready, .m_axis_tdata, .m_axis_tvalid,
        .m_axis_tready, .m_pix_axis_tdata, .m_pix_axis_tvalid, .m_pix_axis_tready, .s_score_axis_tdata,
        .s_score_axis_tvalid, .s_score_axis_tready, .s_label_axis_tdata, .s_label_axis_tvalid,
        .s_label_axis_tready, .err_overrun(1'b0), .err_frame(1'b0), .last_label, .last_status);
endmodule
