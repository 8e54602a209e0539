"""Data sets used by the workflows: loaders, downloaders and small shipped samples."""
