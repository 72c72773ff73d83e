"""tuneserve: fine-tune, export and serve transformer encoders."""
