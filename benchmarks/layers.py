"""Hand-written layers against PyTorch's at the CNN's shapes (batch 50): forward+backward of each
layer, a whole training step of the CNN and the FCN, the study log's nested loops, peak memory.

    python benchmarks/layers.py [--quick]      (the same as `digitlab bench`)
"""

import sys

from digitlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
