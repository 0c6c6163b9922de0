// bnn_addsat: element-wise saturating addition of two AXI-Streams (the IR's AddSat).
//
// Parameters: E          elements per beat (both inputs and the output)
//             IN_EW      bits per input element (both inputs)
//             IN_SIGNED  1: inputs are two's complement, 0: unsigned
//             OUT_EW     bits per output element
//             OUT_MIN, OUT_MAX  clamp range (integers, may be negative; must fit OUT_EW bits)
// out[i] = clamp(a[i] + b[i], OUT_MIN, OUT_MAX) in OUT_EW bits: two's complement when
// OUT_MIN < 0, unsigned otherwise (the IR's INTn / UINTn output datatypes). A transfer takes one beat from each input
// (join); the output is registered. Latency 1 cycle, full throughput.
module bnn_addsat #(
    parameter int E = 1,
    parameter int IN_EW = 8,
    parameter int IN_SIGNED = 1,
    parameter int OUT_EW = 8,
    parameter int OUT_MIN = -128,
    parameter int OUT_MAX = 127
) (
    input  logic                clk,
    input  logic                rst,
    input  logic [E*IN_EW-1:0]  s0_axis_tdata,
    input  logic                s0_axis_tvalid,
    output logic                s0_axis_tready,
    input  logic [E*IN_EW-1:0]  s1_axis_tdata,
    input  logic                s1_axis_tvalid,
    output logic                s1_axis_tready,
    output logic [E*OUT_EW-1:0] m_axis_tdata,
    output logic                m_axis_tvalid,
    input  logic                m_axis_tready
);
    // the sum (of signed or unsigned inputs, IN_EW + 2 signed bits) and both bounds (OUT_EW-bit
    // values, OUT_EW + 1 signed bits) fit SW signed bits; no wider, so that the adder and the two
    // comparisons stay short carry chains (33 bits were the critical path of a placed design)
    localparam int SW = (IN_EW > OUT_EW ? IN_EW : OUT_EW) + 2;
    localparam logic signed [SW-1:0] LO = SW'(OUT_MIN);
    localparam logic signed [SW-1:0] HI = SW'(OUT_MAX);
    // the clamp range must be a range of OUT_EW-bit values (two's complement when OUT_MIN < 0)
    localparam longint OUT_LO = OUT_MIN < 0 ? -(64'sd1 <<< (OUT_EW - 1)) : 0;
    localparam longint OUT_HI = OUT_MIN < 0 ? (64'sd1 <<< (OUT_EW - 1)) - 1 : (64'sd1 <<< OUT_EW) - 1;
    if (E < 1 || IN_EW < 1 || OUT_EW < 1 || OUT_EW > 32 || (IN_SIGNED != 0 && IN_SIGNED != 1)
        || OUT_MIN > OUT_MAX || 64'(OUT_MIN) < OUT_LO || 64'(OUT_MAX) > OUT_HI) begin : g_bad_params
        $error("bnn_addsat: need E, IN_EW >= 1, OUT_EW 1..32, IN_SIGNED 0 or 1 and OUT_MIN <= OUT_MAX within OUT_EW bits (E=%0d IN_EW=%0d OUT_EW=%0d IN_SIGNED=%0d OUT_MIN=%0d OUT_MAX=%0d)",
               E, IN_EW, OUT_EW, IN_SIGNED, OUT_MIN, OUT_MAX);
    end

    logic take, room;
    logic [E*OUT_EW-1:0] result;

    assign room = !m_axis_tvalid || m_axis_tready;
    assign take = s0_axis_tvalid && s1_axis_tvalid && room;
    assign s0_axis_tready = s1_axis_tvalid && room;
    assign s1_axis_tready = s0_axis_tvalid && room;

    for (genvar i = 0; i < E; i++) begin : g_elem
        logic signed [SW-1:0] a, b, sum;
        logic [IN_EW-1:0] ua, ub;
        assign ua = s0_axis_tdata[i*IN_EW +: IN_EW];
        assign ub = s1_axis_tdata[i*IN_EW +: IN_EW];
        if (IN_SIGNED != 0) begin : g_signed
            assign a = SW'($signed(ua));
            assign b = SW'($signed(ub));
        end else begin : g_unsigned
            assign a = $signed(SW'(ua));
            assign b = $signed(SW'(ub));
        end
        assign sum = a + b;
        always_comb begin
            if (sum < LO) result[i*OUT_EW +: OUT_EW] = LO[OUT_EW-1:0];
            else if (sum > HI) result[i*OUT_EW +: OUT_EW] = HI[OUT_EW-1:0];
            else result[i*OUT_EW +: OUT_EW] = sum[OUT_EW-1:0];
        end
    end

    always_ff @(posedge clk) begin
        if (take) m_axis_tdata <= result;
        if (take) m_axis_tvalid <= 1'b1;
        else if (m_axis_tready) m_axis_tvalid <= 1'b0;
        if (rst) m_axis_tvalid <= 1'b0;
    end
endmodule
