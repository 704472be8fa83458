"""Layer 3, data: sources a mixture draws from -- arrays and files, labelled image folders, the embedding store --
and the splits that divide them.

Nothing here unpickles user data by default. Modules import what they need
lazily where it is heavy (Pillow, h5py), so importing one does not import all.
"""
