"""Images and models: ingest, model specs, scoring, the demo scene model."""
