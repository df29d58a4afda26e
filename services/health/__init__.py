"""Health worker: scheduled synthetic probes through the Selector, and prompt-history retention."""
