"""Model folders: what ``fusionrec train`` writes and serving loads (``model_folder``: config, safetensors weights,
id maps, seen interactions; ``knowledge``: the run's knowledge graph and item names). Nothing is pickled."""

from fusionrec.artifacts.model_folder import FORMAT, FORMAT_VERSION, ModelArtifact, load_artifact, save_artifact

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelArtifact", "load_artifact", "save_artifact"]
