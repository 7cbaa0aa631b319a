"""The storage engine: layout, manifests, publishing, the regional read path, events."""
