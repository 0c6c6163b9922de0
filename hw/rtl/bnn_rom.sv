// bnn_rom: a small ROM kept in logic, read into a register: q <= mem[addr] when en.
//
// Parameters: W      bits per word (>= 1)
//             DEPTH  words (1 .. 16: one LUT4 of the address per bit on the ECP5)
//             AW     address bits: $clog2(DEPTH), at least 1, given by the parent, checked here
//                    (an address past DEPTH reads an undefined word)
//             FILE   $readmemh file of DEPTH words ("" : all zero)
// bnn_mvtu builds a weight ROM kept in logic from these, one per bank (WEIGHT_BRAM = 0, WBANK).
// keep_hierarchy: synthesized apart from its parent, the ROM's deepest path is one LUT, so the
// LUT mapper (ABC) has no slack to chain one bit's function through another's LUT or through the
// parent's address counter. Flattened with its parent, it did both: CNV_1W1A's Conv_1, 36 words of
// 1,024 bits in three banks of 16, still took 5 LUT levels from the address counter on the ECP5-85F.
// Latency 1 cycle; no reset (the parent's valid bits say when q counts).
(* keep_hierarchy *)
module bnn_rom #(
    parameter int W = 8,
    parameter int DEPTH = 16,
    parameter int AW = 4,
    parameter FILE = ""
) (
    input  logic          clk,
    input  logic          en,
    input  logic [AW-1:0] addr,
    output logic [W-1:0]  q
);
    if (W < 1 || DEPTH < 1 || DEPTH > 16 || AW != (DEPTH > 1 ? $clog2(DEPTH) : 1)) begin : g_bad_params
        $error("bnn_rom: need W >= 1, DEPTH 1 .. 16 and AW = clog2(DEPTH), at least 1 (W=%0d DEPTH=%0d AW=%0d)",
               W, DEPTH, AW);
    end
    (* rom_style = "logic" *) logic [W-1:0] mem [0:DEPTH-1];
    initial if (FILE != "") $readmemh(FILE, mem);
    always_ff @(posedge clk) if (en) q <= mem[addr];
endmodule
