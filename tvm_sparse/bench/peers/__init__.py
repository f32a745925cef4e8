"""Other engines, driven by their own interpreters (their pins conflict with ours): scripts only."""
