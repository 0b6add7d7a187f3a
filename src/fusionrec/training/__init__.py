"""Training: the single trainer, negative sampling, losses, early stopping, seeding and model inputs."""

from fusionrec.training.inputs import build_inputs
from fusionrec.training.sampling import NegativeSampler, TripleBatches
from fusionrec.training.seeding import seed_everything
from fusionrec.training.run_record import EpochLog, EpochObserver, StopTraining, TrainResult
from fusionrec.training.trainer import NonFiniteLossError, Trainer

__all__ = ["EpochLog", "EpochObserver", "NegativeSampler", "NonFiniteLossError", "StopTraining", "TrainResult",
           "Trainer", "TripleBatches",
           "build_inputs", "seed_everything"]
