"""Azure ML's contrib namespace (only ``services``)."""
