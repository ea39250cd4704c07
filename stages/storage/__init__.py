"""stages/storage."""
