"""Data layer: readers for the derm layouts, lesion-grouped splits, in-memory arrays, synthetic data.

``load_dataset(path)`` recognises the layout (derm7, lesionseg, HAM10000, ISIC Task 1, or a
class-per-folder tree) and returns a ``LesionDataset`` whose samples each carry a split; when
the source has none, a seeded split grouped by lesion and stratified by class is made.
"""

from edgederm.data.dataset import HAM10000_CLASSES, LesionDataset, Sample
from edgederm.data.layouts import LAYOUTS, detect_layout, load_dataset
from edgederm.data.split import grouped_stratified_split

__all__ = ["HAM10000_CLASSES", "LAYOUTS", "LesionDataset", "Sample", "detect_layout",
           "grouped_stratified_split", "load_dataset"]
