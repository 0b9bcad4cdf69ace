"""medtransfer: transfer-learning experiment grids for medical image classification."""

__version__ = "0.1.0"
