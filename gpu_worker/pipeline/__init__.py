"""The resumable job pipeline: stages with done-markers in the object store, quality gate, publish."""
