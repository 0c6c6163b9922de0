# FINN backend targets (bitstream, finn-estimate): written with issue 5
