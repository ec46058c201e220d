"""The protocol's data: which volumes are retain, forget, validation and test, and how to load them.

A manifest is the split written down: computed once from a data root and a seed, saved as JSON,
and passed back in so that two runs (or two papers) use the same split. Volumes are split,
never slices. Loading goes through fastMRI's own ``SliceDataset`` and ``VarNetDataTransform``
with an equispaced mask, so synthetic and real files take exactly the same path.

``fastmri_files`` reads and checks files, ``split`` makes and checks manifests, ``loading``
turns a split into samples; their public names are re-exported here (``data.make_manifest``).
The embedded data set is made by ``phantoms``, ``simulate`` and ``synthetic``.
"""
from .fastmri_files import (
                            RELEASE_FOLDERS,
                            DataError,
                            anatomy_of,
                            fingerprint,
                            read_volume_info,
                            release_layout,
                            resolve,
                            scan,
)
from .loading import MASKS, Split, load_split, mask_func, split_folder
from .split import (
                            MANIFEST_VERSION,
                            RULES,
                            SPLITS,
                            load_manifest,
                            make_manifest,
                            manifest_entry,
                            manifest_hash,
                            release_folders_found,
                            retain_subset,
                            split_counts,
                            verify_manifest,
)

__all__ = ["RELEASE_FOLDERS", "DataError", "anatomy_of", "fingerprint", "read_volume_info",
           "release_layout", "resolve", "scan", "MASKS", "Split",
           "load_split", "mask_func", "split_folder", "MANIFEST_VERSION", "RULES", "SPLITS",
           "load_manifest", "make_manifest", "manifest_entry", "manifest_hash",
           "release_folders_found", "retain_subset", "split_counts", "verify_manifest"]
