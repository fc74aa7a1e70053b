"""edgemark runtime SDK: numpy + OpenCV + one inference runtime; never torch or TensorFlow."""
from .errors import EdgemarkError, InputError, ModelLoadError
from .metadata import MetadataError, ModelMetadata
from .predictor import Prediction, Predictor, PredictorOptions

__version__ = "0.1.0"

__all__ = ["EdgemarkError", "InputError", "MetadataError", "ModelLoadError", "ModelMetadata", "Prediction",
           "Predictor", "PredictorOptions", "__version__"]
