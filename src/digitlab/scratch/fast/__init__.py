"""The speed paths of scratch's layers, apart from the plain versions a learner reads.

Each class here is its plain parent (scratch/conv.py, pooling.py, batchnorm.py) with forward and
backward computing the same numbers faster: same constructor, parameters and buffers, so it
stands in for the plain one anywhere. scratch.Conv2d, MaxPool2d and BatchNorm2d are these.

conv.py       Conv2d: im2col into reused buffers, a per-thread weight gradient, and in training
              correlation through the DFT (spectral.py) where it pays
pooling.py    MaxPool2d: two 1-D passes instead of one over whole windows
batchnorm.py  BatchNorm2d: fused passes over the batch
products.py   long_inner_product: a matrix product with a long inner dimension, split between
              threads (conv's weight gradient, batch norm's sums)
"""

from digitlab.scratch.fast.batchnorm import BatchNorm2d
from digitlab.scratch.fast.conv import Conv2d
from digitlab.scratch.fast.pooling import MaxPool2d

__all__ = ["BatchNorm2d", "Conv2d", "MaxPool2d"]
