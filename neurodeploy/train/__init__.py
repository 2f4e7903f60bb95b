"""Training: ANN, conversion, BPTT, checkpoints."""
from .ann import train_ann
from .bptt import train_bptt
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .convert import convert, copy_ann_weights, init_thresholds

__all__ = ["convert", "copy_ann_weights", "init_thresholds", "load_checkpoint", "read_checkpoint",
           "save_checkpoint", "train_ann", "train_bptt"]
