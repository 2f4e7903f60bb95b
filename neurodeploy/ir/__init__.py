"""The intermediate representation: NIR graphs with deployment metadata, graph passes, ONNX reading and writing."""
from .from_nir import NODE_MAP, from_nir, load_nir_network, read_nir
from .importer import import_nir
from .metadata import DeployMeta, read_meta, write_meta
from .passes import fold_batchnorm, inline_subgraphs, remove_passthrough
from .to_nir import MODULE_MAP, to_nir, write_nir

__all__ = ["MODULE_MAP", "NODE_MAP", "DeployMeta", "fold_batchnorm", "from_nir", "import_nir",
           "inline_subgraphs", "load_nir_network", "read_meta", "read_nir", "remove_passthrough", "to_nir",
           "write_meta", "write_nir"]
