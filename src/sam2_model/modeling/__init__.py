"""SAM 2 building blocks, one file per part of the paper."""
