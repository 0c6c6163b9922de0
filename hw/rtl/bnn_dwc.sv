// bnn_dwc: AXI-Stream data-width converter in whole elements.
//
// Parameters: EW   bits per element
//             IN_E elements per input beat, OUT_E elements per output beat; one divides the other
// Upsizing (OUT_E = R*IN_E): gathers R input beats into one output beat, the first input beat in
//   the low elements; accepts one input beat per cycle (full throughput on the input side),
//   latency 1 cycle after the R-th beat.
// Downsizing (IN_E = R*OUT_E): splits each input beat into R output beats, element 0 first; one
//   output beat per cycle (full throughput on the output side), latency 1 cycle.
// IN_E == OUT_E: wires.
// Element order in the stream is unchanged; the number of elements per frame must be a multiple
// of max(IN_E, OUT_E).
module bnn_dwc #(
    parameter int EW = 1,
    parameter int IN_E = 1,
    parameter int OUT_E = 1
) (
    input  logic              clk,
    input  logic              rst,
    input  logic [IN_E*EW-1:0]  s_axis_tdata,
    input  logic              s_axis_tvalid,
    output logic              s_axis_tready,
    output logic [OUT_E*EW-1:0] m_axis_tdata,
    output logic              m_axis_tvalid,
    input  logic              m_axis_tready
);
    localparam int IW = IN_E * EW;
    localparam int OW = OUT_E * EW;
    if (EW < 1 || IN_E < 1 || OUT_E < 1 || (IN_E % OUT_E != 0 && OUT_E % IN_E != 0)) begin : g_bad_params
        $error("bnn_dwc: need EW, IN_E, OUT_E >= 1 with one of IN_E, OUT_E dividing the other (EW=%0d IN_E=%0d OUT_E=%0d)",
               EW, IN_E, OUT_E);
    end

    if (OUT_E > IN_E) begin : g_up
        localparam int R = OUT_E / IN_E;
        localparam int CW = $clog2(R);
        localparam logic [CW-1:0] LAST = CW'(R - 1);
        logic [CW-1:0] cnt;          // input beats gathered so far
        logic [(R-1)*IW-1:0] gather; // the first R-1 beats, the oldest in the low bits
        logic [(R-1)*IW-1:0] gather_next;
        logic last;

        if (R > 2) begin : g_shift
            assign gather_next = {s_axis_tdata, gather[(R-1)*IW-1:IW]};
        end else begin : g_one
            assign gather_next = s_axis_tdata;
        end
        assign last = cnt == LAST;
        assign s_axis_tready = !last || !m_axis_tvalid || m_axis_tready;

        always_ff @(posedge clk) begin
            if (s_axis_tvalid && s_axis_tready) begin
                if (last) begin
                    m_axis_tdata <= {s_axis_tdata, gather};
                    cnt <= '0;
                end else begin
                    gather <= gather_next;
                    cnt <= cnt + 1'b1;
                end
            end
            if (s_axis_tvalid && s_axis_tready && last) m_axis_tvalid <= 1'b1;
            else if (m_axis_tready) m_axis_tvalid <= 1'b0;
            if (rst) begin
                cnt <= '0;
                m_axis_tvalid <= 1'b0;
            end
        end
    end else if (IN_E > OUT_E) begin : g_down
        localparam int R = IN_E / OUT_E;
        localparam int CW = $clog2(R);
        localparam logic [CW-1:0] LAST = CW'(R - 1);
        logic [CW-1:0] cnt;  // output beats already sent from `data`
        logic [IW-1:0] data; // shifts down by one output beat per transfer
        logic valid, last;

        assign last = cnt == LAST;
        assign m_axis_tdata = data[OW-1:0];
        assign m_axis_tvalid = valid;
        assign s_axis_tready = !valid || (last && m_axis_tready);

        always_ff @(posedge clk) begin
            if (s_axis_tvalid && s_axis_tready) begin
                data <= s_axis_tdata;
                cnt <= '0;
                valid <= 1'b1;
            end else if (valid && m_axis_tready) begin
                data <= data >> OW;
                cnt <= cnt + 1'b1;
                if (last) valid <= 1'b0;
            end
            if (rst) begin
                cnt <= '0;
                valid <= 1'b0;
            end
        end
    end else begin : g_pass
        assign m_axis_tdata = s_axis_tdata;
        assign m_axis_tvalid = s_axis_tvalid;
        assign s_axis_tready = m_axis_tready;
        /* verilator lint_off UNUSEDSIGNAL */
        logic unused;
        assign unused = clk ^ rst;
        /* verilator lint_on UNUSEDSIGNAL */
    end
endmodule
