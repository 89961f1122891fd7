"""Writes the MATLAB v7.3 (HDF5) twins of the Octave-made fixtures.

Octave cannot write v7.3, so this re-saves the data of simplenn_net_v7.mat and
dagnn_v7.mat with `hdf5storage` (MATLAB-compatible HDF5: structs as groups,
cells and struct-array fields as object references into #refs#, char as
uint16, axes reversed), a writer independent of our reader:
    pip install hdf5storage && python tests/data/make_mat73_fixtures.py
"""

import pathlib

import hdf5storage
import scipy.io

HERE = pathlib.Path(__file__).parent

for name in ("simplenn_net_v7", "dagnn_v7"):
    data = scipy.io.loadmat(HERE / f"{name}.mat", squeeze_me=False)
    data = {k: v for k, v in data.items() if not k.startswith("__")}
    hdf5storage.savemat(str(HERE / f"{name.replace('_v7', '')}_v73.mat"), data, format="7.3",
                        matlab_compatible=True, store_python_metadata=False)
