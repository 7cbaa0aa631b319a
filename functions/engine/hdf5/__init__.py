"""HDF5 files as roots: conversion of datasets to Blosc2 chunk by chunk, unfolding, attributes.

Submodules: :mod:`.chunking` (chunk shapes), :mod:`.attrs` (attributes ↔ JSON),
:mod:`.convert` (walking a file, making chunks; imports h5py), :mod:`.stream`
(publishing chunks as they are made), :mod:`.unfold` (the operation every door
uses), :mod:`.storedfile` (a stored file as a file object), :mod:`.export`
(Blosc2 arrays → HDF5).  This package module imports none of them, so the API
does not load h5py until an HDF5 file is actually converted.
"""
