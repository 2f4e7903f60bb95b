"""The intermediate representation: NIR graphs with deployment metadata."""
from .from_nir import NODE_MAP, from_nir, load_nir_network, read_nir
from .metadata import DeployMeta, read_meta, write_meta
from .to_nir import MODULE_MAP, to_nir, write_nir

__all__ = ["MODULE_MAP", "NODE_MAP", "DeployMeta", "from_nir", "load_nir_network", "read_meta", "read_nir",
           "to_nir", "write_meta", "write_nir"]
