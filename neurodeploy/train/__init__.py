"""Training: ANN, conversion, BPTT, HIRE-SNN, checkpoints and resumable training state."""
from .ann import train_ann
from .bptt import train_bptt
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .convert import convert, copy_ann_weights, init_thresholds
from .hire import KappaBuffer, fit_snn, hire_batch, train_hire
from .run import TrainResult, train_recipe, train_snn
from .state import TrainingState, load_training_state, save_training_state

__all__ = ["KappaBuffer", "TrainResult", "TrainingState", "convert", "copy_ann_weights", "fit_snn", "hire_batch",
           "init_thresholds", "load_checkpoint", "load_training_state", "read_checkpoint", "save_checkpoint",
           "save_training_state", "train_ann", "train_bptt", "train_hire", "train_recipe", "train_snn"]
