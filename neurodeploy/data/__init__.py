"""Datasets and input encodings."""
from .datasets import Dataset, list_datasets, load_dataset, register_dataset
from .encoding import encode

__all__ = ["Dataset", "encode", "list_datasets", "load_dataset", "register_dataset"]
